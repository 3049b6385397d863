package format

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/usersuccess/persona-operator/internal/connector"
)

// The fuzz tests compare the readers with straightforward models built on
// encoding/csv and encoding/json: the hand-written JSON decoder must accept
// exactly what encoding/json accepts and yield the same values.

var jsonSeeds = []string{
	`{"a":1,"b":"x","c":[1,{"d":null}],"e":true,"f":false}`,
	`{"id":12345678901234567890123,"x":-1.5e-7,"y":0,"z":-0}`,
	`{"k\u00e9y":"a\"b\\c\/\u00e9\ud83d\ude00\n","lone":"\ud800x","pair":"\ud800\u0041","low":"\udc00"}`,
	"{\"a\":\"x\xffy\",\"b\xfe\":1,\"c\":\"\xed\xa0\x80\"}",
	`{"a":1,"b":2,"a":3}`,
	`[1,2,{"a":[]}]`,
	`"str"`,
	`{"a":01}`,
	`{"a":1.}`,
	`{"a":1e+}`,
	`{"a" : [ 1 , 2 ] , "b" : { } }`,
	`{"a":"\u12"}`,
	`{"a":tru}`,
	`{}`,
	"\ufeff{\"bom\":1}",
}

func FuzzReadNDJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("{\"a\":1,\"b\":2}\n{\"a\":3,\"b\":4}\n{\"b\":5,\"a\":6}\n\n{\"a\":7}\r\n{\"\\u0061\":8,\"b\":9,\"b\":10}\n[1]\n{bad\n"))
	f.Add([]byte("{\"a\":\"x\"}\n{\"a\":\"x\"}\n{\"a\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n{\"a\":1}\n{\"a\":\"1\"}"))
	wide := "{"
	for i := range 40 {
		wide += fmt.Sprintf(`"k%d":%d,`, i, i)
	}
	wide += `"k3":"dup","k39":null}`
	f.Add([]byte(wide + "\n" + wide + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, size := range []struct{ buf, max int }{{bufSize, MaxLineBytes}, {16, 40}} {
			var g got
			if err := readNDJSON(t.Context(), bytes.NewReader(data), g.visit, size.buf, size.max); err != nil {
				t.Fatalf("err = %v", err)
			}
			checkRecords(t, &g, false)
			want := ndjsonModel(data, size.max)
			compareModel(t, &g, want)
		}
	})
}

// ndjsonModel decodes each line with encoding/json: a record, a record error
// (nil record), or nothing for a blank line.
func ndjsonModel(data []byte, maxLine int) map[int64]*connector.Record {
	want := map[int64]*connector.Record{}
	lines := bytes.Split(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i, line := range lines {
		num := int64(i + 1)
		if len(line) > maxLine {
			want[num] = nil
			continue
		}
		if i == 0 {
			line = bytes.TrimPrefix(line, bom)
		}
		if len(bytes.Trim(line, " \t\r")) == 0 {
			continue
		}
		m, ok := stdDecode(line).(map[string]any)
		if !ok {
			want[num] = nil
			continue
		}
		want[num] = &connector.Record{Num: num, Fields: keyOrder(line), Values: []any{m}}
	}
	return want
}

// stdDecode is encoding/json's reading of a whole input, or an error value.
func stdDecode(data []byte) any {
	if !json.Valid(data) {
		return errors.New("invalid")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	return v
}

// keyOrder lists an object's keys in order of first appearance.
func keyOrder(obj []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(obj))
	_, _ = dec.Token()
	var keys []string
	for dec.More() {
		tok, _ := dec.Token()
		var skip json.RawMessage
		_ = dec.Decode(&skip)
		if k := tok.(string); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// compareModel checks the reader's output against a model: per Num, a record
// whose Values[0] is the expected Map(), or nil for a record error.
func compareModel(t *testing.T, g *got, want map[int64]*connector.Record) {
	t.Helper()
	errs := map[int64]bool{}
	for _, e := range g.errs {
		errs[e.Num] = true
		if w, ok := want[e.Num]; !ok || w != nil {
			t.Fatalf("record error %v, want %v", e, w)
		}
	}
	recs := map[int64]connector.Record{}
	for _, r := range g.recs {
		recs[r.Num] = r
		w := want[r.Num]
		if w == nil {
			t.Fatalf("record %d = %#v, want a record error or nothing", r.Num, r)
		}
		if !reflect.DeepEqual(r.Map(), w.Values[0]) || !slices.Equal(r.Fields, w.Fields) {
			t.Fatalf("record %d = %#v / %v, want %#v / %v", r.Num, r.Map(), r.Fields, w.Values[0], w.Fields)
		}
	}
	for num, w := range want {
		if _, ok := recs[num]; !ok && !errs[num] {
			t.Fatalf("nothing for %d, want %v", num, w)
		}
	}
}

// checkRecords checks the invariants every reader keeps.
func checkRecords(t *testing.T, g *got, contiguous bool) {
	t.Helper()
	for i, n := range g.nums {
		if (i > 0 && n <= g.nums[i-1]) || n < 1 || (contiguous && n != int64(i+1)) {
			t.Fatalf("Nums %v not strictly increasing from 1", g.nums)
		}
	}
	for _, r := range g.recs {
		if len(r.Fields) != len(r.Values) {
			t.Fatalf("record %d has %d fields, %d values", r.Num, len(r.Fields), len(r.Values))
		}
		for i, f := range r.Fields {
			if slices.Contains(r.Fields[:i], f) {
				t.Fatalf("record %d repeats field %q", r.Num, f)
			}
		}
	}
}

func FuzzReadJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s), "")
	}
	f.Add([]byte(`{"data":{"users":[{"a":1},"x",{"b":[2]},null]},"next":"/p2"}`), "data.users")
	f.Add([]byte(`{"data":null}`), "data")
	f.Add([]byte(`{"data":[[{"a":1}]]}`), "data.0")
	f.Add([]byte(`{"a":{"b":1}}`), "a.b.c")
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		std := stdDecode(bytes.TrimPrefix(data, bom))
		doc, err := ParseJSON(data)
		if stdErr, ok := std.(error); ok {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseJSON err = %v, encoding/json: %v", err, stdErr)
			}
		} else if err != nil || !reflect.DeepEqual(doc, std) {
			t.Fatalf("ParseJSON = %#v, %v; encoding/json: %#v", doc, err, std)
		}

		var g got
		err = ReadJSON(t.Context(), bytes.NewReader(data), path, g.visit)
		checkRecords(t, &g, true)
		if _, invalid := std.(error); invalid {
			return // checked above
		}
		v, found := Lookup(std, path)
		arr, isArr := v.([]any)
		switch {
		case !found || (v != nil && !isArr):
			if connector.ConfigReason(err) != "InvalidRecordsPath" {
				t.Fatalf("err = %v, want InvalidRecordsPath", err)
			}
			return
		case err != nil:
			t.Fatalf("err = %v", err)
		}
		want := map[int64]*connector.Record{}
		for i, el := range arr {
			num := int64(i + 1)
			if m, ok := el.(map[string]any); ok {
				want[num] = &connector.Record{Fields: slices.Sorted(maps.Keys(m)), Values: []any{m}}
			} else {
				want[num] = nil
			}
		}
		compareModel(t, &g, want)
	})
}

func FuzzReadCSV(f *testing.F) {
	for _, s := range []string{
		"id,name,note\n1,\"Smith, John\",\"say \"\"hi\"\"\"\n2,,\"\"\n",
		"a,b\r\n1,2\r\n3,4\r\n",
		"\ufeffemail,x\nu@example.com,1\n",
		"a,b\n1\n1,2,3\n4,5\n",
		"a,b\n1,x\"y\n2,3\n",
		"a,b\n\"x\ny\",2\n3,\"open\n",
		"a,b,a\n1,2,3\n",
		"a,,b\n",
		"a\n\n\n1\n",
		"role,n\nadmin,1\nadmin,1\nuser,2\nadmin,1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var g got
		err := ReadCSV(t.Context(), bytes.NewReader(data), g.visit)
		checkRecords(t, &g, true)
		header, rows, rowErrs, modelErr := csvModel(data)
		if modelErr != "" || err != nil {
			if connector.ConfigReason(err) != modelErr {
				t.Fatalf("err = %v, want config reason %q", err, modelErr)
			}
			return
		}
		if len(g.nums) != len(rows) {
			t.Fatalf("got %d rows, want %d", len(g.nums), len(rows))
		}
		for _, e := range g.errs {
			if !rowErrs[e.Num] {
				t.Fatalf("record error %v, want row %v", e, rows[e.Num-1])
			}
		}
		for _, r := range g.recs {
			if rowErrs[r.Num] || !slices.Equal(r.Fields, header) || !reflect.DeepEqual(r.Values, rows[r.Num-1]) {
				t.Fatalf("record %#v, want %v / %#v", r, header, rows[r.Num-1])
			}
		}
	})
}

// csvModel reads data with a plain encoding/csv reader.
func csvModel(data []byte) (header []string, rows [][]any, rowErrs map[int64]bool, configErr string) {
	cr := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, bom)))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, nil, nil, "InvalidFormat"
	}
	for i, h := range header {
		if h == "" || slices.Contains(header[:i], h) {
			return nil, nil, nil, "InvalidFormat"
		}
	}
	rowErrs = map[int64]bool{}
	for {
		row, err := cr.Read()
		if err == io.EOF {
			return header, rows, rowErrs, ""
		}
		vals := make([]any, len(row))
		for i, c := range row {
			vals[i] = c
		}
		rows = append(rows, vals)
		if err != nil || len(row) != len(header) {
			rowErrs[int64(len(rows))] = true
		}
	}
}
