//go:build goexperiment.jsonv2

package format

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"io"
	"testing"

	"github.com/usersuccess/persona-operator/internal/connector"
)

// BenchmarkJSONTextNDJSON: encoding/json/jsontext's streaming Decoder reads
// the records as a stream of top-level values, token by token, building the
// record's values (see libs_bench_test.go).
func BenchmarkJSONTextNDJSON(b *testing.B) {
	_, data := benchData()
	benchRead(b, data, func(ctx context.Context, r *bytes.Reader, v connector.Visitor) error {
		dec := jsontext.NewDecoder(r)
		for num := int64(1); ; num++ {
			tok, err := dec.ReadToken()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if tok.Kind() != '{' {
				return errors.New("not an object")
			}
			rec := connector.Record{Num: num}
			for dec.PeekKind() != '}' {
				k, err := dec.ReadToken()
				if err != nil {
					return err
				}
				name := k.String() // a token is void after the next read
				val, err := textValue(dec)
				if err != nil {
					return err
				}
				rec.Fields = append(rec.Fields, name)
				rec.Values = append(rec.Values, val)
			}
			if _, err := dec.ReadToken(); err != nil {
				return err
			}
			if err := v(rec, nil); err != nil {
				return err
			}
		}
	})
}

func textValue(dec *jsontext.Decoder) (any, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case '"':
		return tok.String(), nil
	case '0':
		return json.Number(tok.String()), nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case 'n':
		return nil, nil
	case '[':
		var out []any
		for dec.PeekKind() != ']' {
			x, err := textValue(dec)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		_, err := dec.ReadToken()
		return out, err
	case '{':
		out := map[string]any{}
		for dec.PeekKind() != '}' {
			k, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			name := k.String()
			x, err := textValue(dec)
			if err != nil {
				return nil, err
			}
			out[name] = x
		}
		_, err := dec.ReadToken()
		return out, err
	}
	return nil, errors.New("unexpected token")
}
