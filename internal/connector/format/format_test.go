package format

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/usersuccess/persona-operator/internal/connector"
)

// got is what a reader handed to its visitor.
type got struct {
	recs []connector.Record
	errs []*connector.RecordError
	nums []int64 // every Num, records and errors, in order
}

func (g *got) visit(rec connector.Record, recErr *connector.RecordError) error {
	if recErr != nil {
		g.errs = append(g.errs, recErr)
		g.nums = append(g.nums, recErr.Num)
		return nil
	}
	g.recs = append(g.recs, rec)
	g.nums = append(g.nums, rec.Num)
	return nil
}

// rec builds an expected record from alternating names and values.
func rec(num int64, kv ...any) connector.Record {
	r := connector.Record{Num: num}
	for i := 0; i < len(kv); i += 2 {
		r.Fields = append(r.Fields, kv[i].(string))
		r.Values = append(r.Values, kv[i+1])
	}
	return r
}

type readFunc func(ctx context.Context, in string, visit connector.Visitor) error

func readCSV(ctx context.Context, in string, v connector.Visitor) error {
	return ReadCSV(ctx, strings.NewReader(in), v)
}

func readNDJSONString(ctx context.Context, in string, v connector.Visitor) error {
	return ReadNDJSON(ctx, strings.NewReader(in), v)
}

type readCase struct {
	name    string
	in      string
	recs    []connector.Record
	errNums []int64 // Nums of the record errors
	reason  string  // substring of the first record error's reason
	config  string  // expected ConfigError reason of the whole read
}

func runReadCases(t *testing.T, read readFunc, cases []readCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var g got
			err := read(t.Context(), tc.in, g.visit)
			if tc.config != "" {
				if connector.ConfigReason(err) != tc.config {
					t.Fatalf("err = %v, want ConfigError %s", err, tc.config)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if len(g.recs) != len(tc.recs) {
				t.Fatalf("got %d records %+v, want %d %+v", len(g.recs), g.recs, len(tc.recs), tc.recs)
			}
			for i := range tc.recs {
				if !sameRecord(g.recs[i], tc.recs[i]) {
					t.Errorf("record %d = %#v, want %#v", i, g.recs[i], tc.recs[i])
				}
			}
			var errNums []int64
			for _, e := range g.errs {
				errNums = append(errNums, e.Num)
			}
			if !reflect.DeepEqual(errNums, tc.errNums) {
				t.Errorf("record errors %v, want at %v", g.errs, tc.errNums)
			}
			if tc.reason != "" && (len(g.errs) == 0 || !strings.Contains(g.errs[0].Reason, tc.reason)) {
				t.Errorf("record errors %v, want reason containing %q", g.errs, tc.reason)
			}
		})
	}
}

// sameRecord compares records, taking an empty Fields or Values as nil.
func sameRecord(a, b connector.Record) bool {
	return a.Num == b.Num && len(a.Fields) == len(b.Fields) && len(a.Values) == len(b.Values) &&
		(len(a.Fields) == 0 || reflect.DeepEqual(a.Fields, b.Fields)) &&
		(len(a.Values) == 0 || reflect.DeepEqual(a.Values, b.Values))
}

func TestReadCSV(t *testing.T) {
	runReadCases(t, readCSV, []readCase{
		{name: "quoting", in: "id,name,note\n1,\"Smith, John\",\"say \"\"hi\"\"\"\n2,,\"\"\n",
			recs: []connector.Record{
				rec(1, "id", "1", "name", "Smith, John", "note", `say "hi"`),
				rec(2, "id", "2", "name", "", "note", ""),
			}},
		{name: "CRLF", in: "a,b\r\n1,2\r\n3,4\r\n",
			recs: []connector.Record{rec(1, "a", "1", "b", "2"), rec(2, "a", "3", "b", "4")}},
		{name: "BOM", in: "\ufeffemail,x\nu@example.com,1\n",
			recs: []connector.Record{rec(1, "email", "u@example.com", "x", "1")}},
		{name: "unicode", in: "名前,ville\n山田,Zürich\n",
			recs: []connector.Record{rec(1, "名前", "山田", "ville", "Zürich")}},
		{name: "multi-line cell", in: "a,b\n\"x\ny\",2\n3,4\n",
			recs: []connector.Record{rec(1, "a", "x\ny", "b", "2"), rec(2, "a", "3", "b", "4")}},
		{name: "ragged rows", in: "a,b\n1\n1,2,3\n4,5\n",
			recs:    []connector.Record{rec(3, "a", "4", "b", "5")},
			errNums: []int64{1, 2}, reason: "row has 1 field, header has 2"},
		{name: "bare quote", in: "a,b\n1,x\"secret\n2,3\n",
			recs:    []connector.Record{rec(2, "a", "2", "b", "3")},
			errNums: []int64{1}, reason: "column 4: bare \""},
		{name: "unclosed quote", in: "a,b\n1,2\n3,\"open\n",
			recs:    []connector.Record{rec(1, "a", "1", "b", "2")},
			errNums: []int64{2}, reason: "extraneous or missing"},
		{name: "empty trailing lines", in: "a\n1\n\n\n",
			recs: []connector.Record{rec(1, "a", "1")}},
		{name: "header only", in: "a,b\n"},
		{name: "no trailing newline", in: "a\n1",
			recs: []connector.Record{rec(1, "a", "1")}},
		{name: "empty input", in: "", config: "InvalidFormat"},
		{name: "only BOM", in: "\ufeff", config: "InvalidFormat"},
		{name: "duplicate column", in: "a,b,a\n1,2,3\n", config: "InvalidFormat"},
		{name: "empty column name", in: "a,,b\n1,2,3\n", config: "InvalidFormat"},
		{name: "bad header quote", in: "a,\"b\n", config: "InvalidFormat"},
	})
}

func TestReadCSVSharesHeaderAndKeepsValues(t *testing.T) {
	var g got
	if err := readCSV(t.Context(), "a,b\n1,2\n3,4\n", g.visit); err != nil {
		t.Fatal(err)
	}
	if &g.recs[0].Fields[0] != &g.recs[1].Fields[0] {
		t.Error("records do not share the header slice")
	}
	// ReuseRecord must not leak into the values handed out.
	if g.recs[0].Values[0] != "1" || g.recs[1].Values[0] != "3" {
		t.Errorf("values changed after later rows: %v %v", g.recs[0].Values, g.recs[1].Values)
	}
}

func TestReadCSVReasonHasNoValue(t *testing.T) {
	var g got
	in := "a,b\nsecret@example.com\nsecret\"x,1\n\"secret\"x,1\n"
	if err := readCSV(t.Context(), in, g.visit); err != nil {
		t.Fatal(err)
	}
	if len(g.errs) != 3 {
		t.Fatalf("errors %v", g.errs)
	}
	for _, e := range g.errs {
		if strings.Contains(e.Error(), "secret") {
			t.Errorf("reason quotes a value: %v", e)
		}
	}
}

func TestReadNDJSON(t *testing.T) {
	n := func(s string) json.Number { return json.Number(s) }
	runReadCases(t, readNDJSONString, []readCase{
		{name: "types and order", in: `{"b":"x","a":1.5,"t":true,"f":false,"z":null,"l":[1,"y",[]],"o":{"k":{}}}` + "\n",
			recs: []connector.Record{rec(1, "b", "x", "a", n("1.5"), "t", true, "f", false, "z", nil,
				"l", []any{n("1"), "y", []any{}}, "o", map[string]any{"k": map[string]any{}})}},
		{name: "huge numbers", in: `{"i":12345678901234567890123,"big":1e400,"neg":-0.0,"e":2E-3}`,
			recs: []connector.Record{rec(1, "i", n("12345678901234567890123"), "big", n("1e400"), "neg", n("-0.0"), "e", n("2E-3"))}},
		{name: "blank lines counted", in: "{\"a\":1}\n\n  \t\n{\"a\":2}\n\n",
			recs: []connector.Record{rec(1, "a", n("1")), rec(4, "a", n("2"))}},
		{name: "CRLF", in: "{\"a\":1}\r\n{\"a\":2}\r\n",
			recs: []connector.Record{rec(1, "a", n("1")), rec(2, "a", n("2"))}},
		{name: "BOM", in: "\ufeff{\"a\":1}\n",
			recs: []connector.Record{rec(1, "a", n("1"))}},
		{name: "bad lines go on", in: "{\"a\":1}\n{bad\n[1,2]\n\"x\"\n{\"a\":2} x\n{\"a\":3}",
			recs:    []connector.Record{rec(1, "a", n("1")), rec(6, "a", n("3"))},
			errNums: []int64{2, 3, 4, 5}, reason: "invalid JSON at column 2"},
		{name: "not an object", in: "[1,2]\n",
			errNums: []int64{1}, reason: "line is an array, not a JSON object"},
		{name: "escapes", in: `{"k\u00e9y":"a\"b\\c\/\u00e9\ud83d\ude00\n","lone":"\ud800x","pair":"\ud800\u0041"}`,
			recs: []connector.Record{rec(1, "kéy", "a\"b\\c/é😀\n", "lone", "\ufffdx", "pair", "\ufffdA")}},
		{name: "invalid UTF-8", in: "{\"a\":\"x\xffy\",\"b\xfe\":1}",
			recs: []connector.Record{rec(1, "a", "x\ufffdy", "b\ufffd", n("1"))}},
		{name: "unicode", in: `{"名前":"山田","ville":"Zürich"}`,
			recs: []connector.Record{rec(1, "名前", "山田", "ville", "Zürich")}},
		{name: "duplicate keys keep the last value", in: `{"a":"x","b":2,"a":"y"}` + "\n" + `{"a":1,"a":"z"}`,
			recs: []connector.Record{rec(1, "a", "y", "b", n("2")), rec(2, "a", "z")}},
		{name: "changing keys", in: "{\"a\":1,\"b\":2}\n{\"a\":3,\"c\":4}\n{\"a\":5}\n{\"a\":6,\"b\":7,\"c\":8}\n{}\n{\"\\u0061\":9,\"b\":10}\n",
			recs: []connector.Record{rec(1, "a", n("1"), "b", n("2")), rec(2, "a", n("3"), "c", n("4")), rec(3, "a", n("5")),
				rec(4, "a", n("6"), "b", n("7"), "c", n("8")), rec(5), rec(6, "a", n("9"), "b", n("10"))}},
		{name: "same text, other type", in: "{\"a\":\"1\",\"b\":[\"x\"]}\n{\"a\":1,\"b\":[\"x\",1]}\n{\"a\":\"1\",\"b\":\"x\"}\n",
			recs: []connector.Record{rec(1, "a", "1", "b", []any{"x"}), rec(2, "a", n("1"), "b", []any{"x", n("1")}), rec(3, "a", "1", "b", "x")}},
		{name: "empty input"},
		{name: "control character", in: "{\"a\":\"x\ty\"}\n", errNums: []int64{1}, reason: "control character"},
		{name: "bad numbers", in: "{\"a\":01}\n{\"a\":1.}\n{\"a\":-}\n{\"a\":1e}\n{\"a\":.5}\n{\"a\":+1}\n",
			errNums: []int64{1, 2, 3, 4, 5, 6}},
		{name: "truncated", in: "{\"a\":\"x\n{\"a\":[1,\n{\"a\"\n{\"a\":tru}\n{\"a\":1,}\n",
			errNums: []int64{1, 2, 3, 4, 5}},
	})
}

func TestReadNDJSONReasonHasNoValue(t *testing.T) {
	var g got
	in := "{\"email\":\"secret@example.com\" \"x\"}\n{\"email\":secret}\n\"secret\"\n{\"a\":\"secret\\q\"}\n"
	if err := readNDJSONString(t.Context(), in, g.visit); err != nil {
		t.Fatal(err)
	}
	if len(g.errs) != 4 {
		t.Fatalf("errors %v", g.errs)
	}
	for _, e := range g.errs {
		if strings.Contains(e.Error(), "secret") {
			t.Errorf("reason quotes a value: %v", e)
		}
	}
}

func TestReadNDJSONLongLines(t *testing.T) {
	big := strings.Repeat("x", 2<<20)
	in := `{"a":"` + big + `"}` + "\n" + `{"a":"y"}` + "\n"
	var g got
	if err := readNDJSONString(t.Context(), in, g.visit); err != nil {
		t.Fatal(err)
	}
	if len(g.recs) != 2 || g.recs[0].Values[0] != big || g.recs[1].Values[0] != "y" {
		t.Fatalf("got %d records, errors %v", len(g.recs), g.errs)
	}

	// Over the limit: rejected and skipped, whatever the buffer size.
	for _, bufLen := range []int{16, 64, 4096} {
		g = got{}
		in := "{\"a\":\"" + strings.Repeat("x", 100) + "\"}\n{\"a\":1}\n{\"a\":\"" + strings.Repeat("y", 200) + "\"}"
		if err := readNDJSON(t.Context(), strings.NewReader(in), g.visit, bufLen, 50); err != nil {
			t.Fatal(err)
		}
		if len(g.recs) != 1 || g.recs[0].Num != 2 || len(g.errs) != 2 || g.errs[0].Num != 1 || g.errs[1].Num != 3 ||
			!strings.Contains(g.errs[0].Reason, "longer than 50 bytes") {
			t.Errorf("buffer %d: records %v, errors %v", bufLen, g.recs, g.errs)
		}
	}
}

func TestReadNDJSONNesting(t *testing.T) {
	ok := `{"a":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + "}\n"
	tooDeep := `{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + "}\n"
	for _, in := range []string{ok, tooDeep} {
		var g got
		if err := readNDJSONString(t.Context(), in, g.visit); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		stdOK := json.Unmarshal([]byte(in), &m) == nil
		if (len(g.recs) == 1) != stdOK {
			t.Errorf("depth %d: accepted %v, encoding/json %v", strings.Count(in, "[")+1, len(g.recs) == 1, stdOK)
		}
	}
}

// TestReadersStop checks that a visitor's error is returned as is and that a
// cancelled context stops reading.
func TestReadersStop(t *testing.T) {
	readers := map[string]struct {
		read readFunc
		in   string
	}{
		"CSV":    {readCSV, "a\n1\n2\n3\n"},
		"NDJSON": {readNDJSONString, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"},
		"JSON": {func(ctx context.Context, in string, v connector.Visitor) error {
			return ReadJSON(ctx, strings.NewReader(in), "", v)
		}, `[{"a":1},{"a":2},{"a":3}]`},
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			stop := errors.New("stop")
			calls := 0
			err := r.read(t.Context(), r.in, func(connector.Record, *connector.RecordError) error {
				calls++
				return stop
			})
			if err != stop || calls != 1 {
				t.Errorf("err = %v after %d calls, want the visitor's error after 1", err, calls)
			}

			ctx, cancel := context.WithCancel(t.Context())
			calls = 0
			err = r.read(ctx, r.in, func(connector.Record, *connector.RecordError) error {
				calls++
				cancel()
				return nil
			})
			if !errors.Is(err, context.Canceled) || calls != 1 {
				t.Errorf("err = %v after %d calls, want context.Canceled after 1", err, calls)
			}
		})
	}
}

func TestReadJSON(t *testing.T) {
	n := func(s string) json.Number { return json.Number(s) }
	read := func(path string) readFunc {
		return func(ctx context.Context, in string, v connector.Visitor) error {
			return ReadJSON(ctx, strings.NewReader(in), path, v)
		}
	}
	doc := `{"data":{"users":[{"z":1,"a":"x"},"oops",{"n":{"k":[true]}},null]},"empty":null,"obj":{}}`
	t.Run("document array", func(t *testing.T) {
		runReadCases(t, read(""), []readCase{
			{name: "records", in: "\ufeff [{\"b\":1,\"a\":2}, {}] ",
				recs: []connector.Record{rec(1, "a", n("2"), "b", n("1")), rec(2)}},
			{name: "huge number", in: `[{"id":123456789012345678901234567890}]`,
				recs: []connector.Record{rec(1, "id", n("123456789012345678901234567890"))}},
			{name: "empty array", in: `[]`},
			{name: "not an array", in: `{"a":1}`, config: "InvalidRecordsPath"},
		})
	})
	t.Run("records path", func(t *testing.T) {
		runReadCases(t, read("data.users"), []readCase{
			{name: "nested", in: doc,
				recs: []connector.Record{
					rec(1, "a", "x", "z", n("1")),
					rec(3, "n", map[string]any{"k": []any{true}}),
				},
				errNums: []int64{2, 4}, reason: "array element is a string, not a JSON object"},
		})
		runReadCases(t, read("empty"), []readCase{{name: "null is empty", in: doc}})
		runReadCases(t, read("obj"), []readCase{{name: "object", in: doc, config: "InvalidRecordsPath"}})
		runReadCases(t, read("data.missing"), []readCase{{name: "missing", in: doc, config: "InvalidRecordsPath"}})
		runReadCases(t, read("data.users.x"), []readCase{{name: "through array", in: doc, config: "InvalidRecordsPath"}})
	})
	t.Run("invalid document", func(t *testing.T) {
		for _, in := range []string{``, `[{"a":1}`, `[{"a":1}] x`, `{"a":"secret}`, "[1]\x00"} {
			err := ReadJSON(t.Context(), strings.NewReader(in), "", (&got{}).visit)
			var se *SyntaxError
			if !errors.As(err, &se) || connector.IsConfig(err) || strings.Contains(err.Error(), "secret") {
				t.Errorf("%q: err = %v, want a *SyntaxError without the input", in, err)
			}
		}
	})
}

func TestVisitJSONRecordsNumBase(t *testing.T) {
	doc, err := ParseJSON([]byte(`{"items":[{"a":1},2]}`))
	if err != nil {
		t.Fatal(err)
	}
	var g got
	n, err := VisitJSONRecords(t.Context(), doc, "items", 10, g.visit)
	if err != nil || n != 2 || !reflect.DeepEqual(g.nums, []int64{11, 12}) {
		t.Errorf("n = %d, err = %v, nums %v", n, err, g.nums)
	}
}

func TestLookup(t *testing.T) {
	doc, err := ParseJSON([]byte(`{"a":{"b":[{"c":"x"},null]},"n":null,"s":"str","": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want any
		ok   bool
	}{
		{"a.b.0.c", "x", true},
		{"a.b.1", nil, true},
		{"n", nil, true},
		{"a.b.2", nil, false},
		{"a.b.-1", nil, false},
		{"a.b.+0", nil, false},
		{"a.b.01", nil, true}, // leading zeros are still digits
		{"a.x", nil, false},
		{"s.x", nil, false},
		{"a..b", nil, false},
		{"a.b.99999999999999999999", nil, false},
	}
	for _, tc := range cases {
		got, ok := Lookup(doc, tc.path)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Lookup(%q) = %v, %v; want %v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
	if got, ok := Lookup(doc, ""); !ok || !reflect.DeepEqual(got, doc) {
		t.Errorf("Lookup(\"\") = %v, %v", got, ok)
	}
}

// Wide lines: duplicate keys far apart, uncached columns, and a line with very
// many keys. How fast is BenchmarkReadNDJSONWide's to say (a quadratic blow-up
// shows there, and as this test running into go test's timeout), not a timer
// here: a loaded machine would make a timed test fail for nothing.
func TestReadNDJSONWide(t *testing.T) {
	const keys = 200_000
	line := wideLine(keys)
	for range 2 { // the second line takes the same-keys path
		var g got
		if err := readNDJSONString(t.Context(), line+line, g.visit); err != nil {
			t.Fatal(err)
		}
		if len(g.recs) != 2 {
			t.Fatalf("records %d, errors %v", len(g.recs), g.errs)
		}
		for _, r := range g.recs {
			if len(r.Fields) != keys || r.Values[5] != "last" || r.Values[keys-1] != json.Number("1") || r.Values[300] != "v300" {
				t.Fatalf("record %d: %d fields, [5]=%v [last]=%v", r.Num, len(r.Fields), r.Values[5], r.Values[keys-1])
			}
		}
	}
}

// wideLine is one NDJSON line with keys k0…k(n-1), k5 repeated last.
func wideLine(keys int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range keys {
		fmt.Fprintf(&b, `"k%d":"v%d",`, i, i)
	}
	fmt.Fprintf(&b, `"k5":"last","k%d":1}`+"\n", keys-1)
	return b.String()
}

// BenchmarkReadNDJSONWide reads two lines of 200,000 keys each; compare ns/op
// with the keys doubled to see that the reader stays linear in them.
func BenchmarkReadNDJSONWide(b *testing.B) {
	lines := strings.Repeat(wideLine(200_000), 2)
	b.SetBytes(int64(len(lines)))
	for b.Loop() {
		var g got
		if err := readNDJSONString(b.Context(), lines, g.visit); err != nil {
			b.Fatal(err)
		}
	}
}
