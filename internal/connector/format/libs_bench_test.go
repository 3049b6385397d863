package format

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/usersuccess/persona-operator/internal/connector"
)

// Does a JSON library come close to the hand-written decoder (decode.go)?
// Each candidate reads the same 100 k NDJSON records (15 fields) and hands the
// visitor the same records: the values encoding/json gives for an `any` with
// UseNumber (string, json.Number, bool, nil, []any, map[string]any), fields in
// document order. The decoder stays only while none does (issue 12);
// docs/benchmarks.md has the figures and the decision.
//
//	go test ./internal/connector/format -run '^$' -bench 'NDJSON' -benchmem -benchtime 5x -cpu 1 -count 3
//	GOEXPERIMENT=jsonv2 go test ./internal/connector/format -run '^$' -bench 'NDJSON' -benchmem -benchtime 5x -cpu 1 -count 3
//
// (the second adds BenchmarkJSONTextNDJSON: encoding/json/jsontext, the
// go-json-experiment tokenizer merged into the standard library, is behind
// GOEXPERIMENT=jsonv2 in Go 1.26.)

// BenchmarkFastjsonNDJSON: github.com/valyala/fastjson parses each line (a
// reused Parser, no allocation for the parse tree), then its values are
// converted to the record's values.
func BenchmarkFastjsonNDJSON(b *testing.B) {
	_, data := benchData()
	benchRead(b, data, func(ctx context.Context, r *bytes.Reader, v connector.Visitor) error {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
		var p fastjson.Parser
		for num := int64(1); sc.Scan(); num++ {
			val, err := p.ParseBytes(sc.Bytes())
			if err != nil {
				return err
			}
			obj, err := val.Object()
			if err != nil {
				return err
			}
			rec := connector.Record{Num: num}
			obj.Visit(func(k []byte, x *fastjson.Value) {
				rec.Fields = append(rec.Fields, string(k))
				rec.Values = append(rec.Values, fastValue(x))
			})
			if err := v(rec, nil); err != nil {
				return err
			}
		}
		return sc.Err()
	})
}

func fastValue(x *fastjson.Value) any {
	switch x.Type() {
	case fastjson.TypeString:
		return string(x.GetStringBytes())
	case fastjson.TypeNumber:
		return json.Number(x.String())
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	case fastjson.TypeArray:
		arr := x.GetArray()
		out := make([]any, len(arr))
		for i, el := range arr {
			out[i] = fastValue(el)
		}
		return out
	case fastjson.TypeObject:
		out := map[string]any{}
		x.GetObject().Visit(func(k []byte, el *fastjson.Value) { out[string(k)] = fastValue(el) })
		return out
	}
	return nil
}
