package httpsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/format"
)

// collected is what a page gave: records (fields and values) and record errors.
type collected struct {
	recs []string
}

func (c *collected) visit(rec connector.Record, recErr *connector.RecordError) error {
	if recErr != nil {
		c.recs = append(c.recs, fmt.Sprintf("#%d error %s", recErr.Num, recErr.Reason))
		return nil
	}
	c.recs = append(c.recs, fmt.Sprintf("#%d %v=%#v", rec.Num, rec.Fields, rec.Values))
	return nil
}

// wholeTree is how a page was read before streaming: the whole document
// decoded, then the records and the token looked up in it.
func wholeTree(doc, records, token string) (c collected, tok any, found bool, err error) {
	d, err := format.ParseJSON([]byte(doc))
	if err != nil {
		return c, nil, false, err
	}
	if _, err = format.VisitJSONRecords(context.Background(), d, records, 10, c.visit); err != nil {
		return c, nil, false, err
	}
	if token != "" {
		tok, found = format.Lookup(d, token)
	}
	return c, tok, found, nil
}

// The streamed page gives exactly the records, record errors, token and error
// class the whole-document decoder gives.
func TestStreamPageMatchesWholeTree(t *testing.T) {
	tests := []struct{ name, doc, records, token string }{
		{"top-level array", `[{"id":1},{"id":"2","x":[1,{"a":null}]}]`, "", ""},
		{"nested path and cursor", `{"meta":{"cursor":"c2","n":3},"data":{"items":[{"id":1}]}}`, "data.items", "meta.cursor"},
		{"token before records", `{"next":"/p2","skip":{"deep":[1,2,[3]]},"items":[{"b":2,"a":1}]}`, "items", "next"},
		{"numeric cursor keeps its digits", `{"items":[],"cursor":12345678901234567890}`, "items", "cursor"},
		{"index in the path", `{"pages":[{"items":[{"id":0}]},{"items":[{"id":1}]}]}`, "pages.1.items", "pages.0.items.0.id"},
		{"index with leading zeros", `{"pages":[{"items":[]},{"items":[{"id":1}]}]}`, "pages.01.items", ""},
		{"null records", `{"items":null}`, "items", ""},
		{"records not an array", `{"items":{"id":1}}`, "items", ""},
		{"records a string", `{"items":"x"}`, "items", ""},
		{"records missing", `{"data":[]}`, "items", ""},
		{"path through a scalar", `{"items":3}`, "items.x", ""},
		{"elements not objects", `{"items":[1,"a",null,[],{"id":1}]}`, "items", ""},
		{"duplicate key in a record", `{"items":[{"a":1,"b":2,"a":3}]}`, "items", ""},
		{"missing token", `{"items":[]}`, "items", "next.href"},
		{"null token", `{"items":[],"next":null}`, "items", "next"},
		{"object token", `{"items":[],"next":{"href":"x"}}`, "items", "next"},
		{"BOM", "\xef\xbb\xbf" + `[{"id":1}]`, "", ""},
		{"unicode escapes and invalid UTF-8", `[{"s":"\u00e9\ud83d\ude00 \xff"}]`, "", ""},
		{"trailing garbage", `[{"id":1}] x`, "", ""},
		{"truncated", `{"items":[{"id":1},`, "items", ""},
		{"invalid inside a record", `{"items":[{"id":01}]}`, "items", ""},
		{"invalid in a skipped value", `{"other":[tru],"items":[]}`, "items", ""},
		{"empty body", ``, "", ""},
		{"whitespace around", " \n[ {\"id\" : 1} ] \n", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, wantTok, wantFound, wantErr := wholeTree(tt.doc, tt.records, tt.token)
			var got collected
			res, gotErr := streamPage(context.Background(), strings.NewReader(tt.doc), tt.records, tokenPaths(tt.token), 10, got.visit)
			if (wantErr == nil) != (gotErr == nil) || connector.IsConfig(wantErr) != connector.IsConfig(gotErr) {
				t.Fatalf("error %v, want %v", gotErr, wantErr)
			}
			if wantErr != nil {
				if strings.Contains(gotErr.Error(), "tru") || strings.Contains(gotErr.Error(), "01") {
					t.Errorf("the error quotes the input: %v", gotErr)
				}
				return
			}
			if !reflect.DeepEqual(got.recs, want.recs) {
				t.Errorf("records\n%q\nwant\n%q", got.recs, want.recs)
			}
			if res.records != int64(len(want.recs)) {
				t.Errorf("counted %d records, want %d", res.records, len(want.recs))
			}
			if gotTok, gotFound := res.first(); gotFound != wantFound || !reflect.DeepEqual(gotTok, wantTok) {
				t.Errorf("token %#v (found %v), want %#v (found %v)", gotTok, gotFound, wantTok, wantFound)
			}
		})
	}
}

// A second array at the records path (a duplicate key) is refused: the
// whole-document decoder kept the last one, a stream has visited the first.
func TestStreamPageDuplicateRecordsKey(t *testing.T) {
	var c collected
	_, err := streamPage(context.Background(), strings.NewReader(`{"items":[{"id":1}],"items":[{"id":2}]}`), "items", nil, 0, c.visit)
	if !connector.IsConfig(err) || !strings.Contains(err.Error(), "appears twice") {
		t.Fatalf("error %v, want a ConfigError naming the duplicate", err)
	}
}

// A visitor's error stops the stream and comes back untouched.
func TestStreamPageVisitorError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	_, err := streamPage(context.Background(), strings.NewReader(`[{"id":1},{"id":2},{"id":3}]`), "", nil, 0,
		func(connector.Record, *connector.RecordError) error {
			if n++; n == 2 {
				return stop
			}
			return nil
		})
	if err != stop || n != 2 {
		t.Fatalf("error %v after %d records, want stop after 2", err, n)
	}
}

// generated is a JSON page of n records made as it is read: the body is never
// in memory as a whole.
type generated struct {
	n, i int
	buf  []byte
	done bool
}

func (g *generated) Read(p []byte) (int, error) {
	for len(g.buf) < len(p) && !g.done {
		switch {
		case g.i == 0:
			g.buf = append(g.buf, `{"meta":{"total":1},"data":[`...)
		case g.i > g.n:
			g.buf = append(g.buf, `],"next":null}`...)
			g.done = true
			continue
		case g.i > 1:
			g.buf = append(g.buf, ',')
		}
		if g.i >= 1 {
			g.buf = fmt.Appendf(g.buf, `{"id":"u%08d","account":"a%d","role":"decision_maker","nps":%d,"features":["sso","audit"]}`, g.i, g.i/10, g.i%11)
		}
		g.i++
	}
	if len(g.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// Streaming a 30 MB page keeps the heap at a few MiB: it never holds the body
// or the decoded document (the whole-document decoder needed the body plus a
// tree several times its size).
func TestStreamPageMemory(t *testing.T) {
	const records = 300_000 // about 30 MB of JSON
	runtime.GC()
	var peak uint64
	var ms runtime.MemStats
	seen := 0
	res, err := streamPage(context.Background(), &generated{n: records}, "data", []string{"next"}, 0,
		func(rec connector.Record, recErr *connector.RecordError) error {
			if recErr != nil {
				return errors.New(recErr.Reason)
			}
			if seen++; seen%50_000 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
			return nil
		})
	if err != nil || res.records != records || !res.found[0] {
		t.Fatalf("%d records, token found %v, error %v", res.records, res.found[0], err)
	}
	t.Logf("peak heap %.1f MiB while streaming %d records", float64(peak)/(1<<20), records)
	if peak > 64<<20 {
		t.Errorf("peak heap %d bytes, want under 64 MiB", peak)
	}
}

// tokenPaths is the extract list of a single token path ("": none).
func tokenPaths(token string) []string {
	if token == "" {
		return nil
	}
	return []string{token}
}

// first is the first extracted value, for tests of one token.
func (r pageResult) first() (any, bool) {
	if len(r.values) == 0 {
		return nil, false
	}
	return r.values[0], r.found[0]
}
