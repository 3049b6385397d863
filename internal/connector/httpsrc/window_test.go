package httpsrc

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// searchServer is a search API with a result cap per query: it answers a
// POST {"since": <s>, "after": "<n>"} with the records whose "u" is at least
// since, from position n, at most cap per query. Each request's body is kept.
func searchServer(t *testing.T, us []int, limit, cap int) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q struct {
			Since int64  `json:"since"`
			After string `json:"after"`
		}
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&q) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		b, _ := json.Marshal(q)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		var after int
		_, _ = fmt.Sscan(q.After, &after)
		if q.After != "" && after >= cap {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var sel []string
		for i, u := range us {
			if int64(u) >= q.Since {
				sel = append(sel, fmt.Sprintf(`{"id":"r%d","u":%d}`, i, u))
			}
		}
		end := min(after+limit, len(sel), cap)
		next := ""
		if end < len(sel) {
			next = fmt.Sprintf(`,"next":"%d"`, end)
		}
		_, _ = fmt.Fprintf(w, `{"results":[%s]%s}`, strings.Join(sel[after:end], ","), next)
	}))
	t.Cleanup(srv.Close)
	return srv, &bodies
}

func windowConfig(url string) Config {
	return Config{URL: url, Method: http.MethodPost, Body: `{"since":"{since}","after":"{cursor}"}`, RecordsPath: "results",
		Pagination: Pagination{Type: PaginationCursor, CursorPath: "next"}, SinceFormat: FormatUnixSeconds,
		MaxResults: 4, WatermarkField: "u"}
}

func TestWindowedListing(t *testing.T) {
	// Watermarks (Unix seconds) sorted ascending, as the query asks.
	srv, bodies := searchServer(t, []int{10, 11, 12, 13, 13, 14, 15, 16, 17}, 2, 4)
	r, err := fetch(t, windowConfig(srv.URL))
	// The second query starts at 13 (r3 and r4 again), the third at 15 (r6 again).
	wantIDs(t, r, err, "r0", "r1", "r2", "r3", "r3", "r4", "r5", "r6", "r6", "r7", "r8")
	want := []string{`{"since":0,"after":""}`, `{"since":0,"after":"2"}`, `{"since":13,"after":""}`, `{"since":13,"after":"2"}`,
		`{"since":15,"after":""}`, `{"since":15,"after":"2"}`}
	if got := strings.Join(*bodies, " "); got != strings.Join(want, " ") {
		t.Errorf("requests\n%s\nwant\n%s", got, strings.Join(want, " "))
	}
}

func TestWindowStuck(t *testing.T) {
	// Five records share one watermark: a query of four cannot get past them.
	srv, _ := searchServer(t, []int{10, 20, 20, 20, 20, 20, 30}, 2, 4)
	_, err := fetch(t, windowConfig(srv.URL))
	wantConfig(t, err, "WatermarkWindowFull")
}

func TestWindowUnsorted(t *testing.T) {
	srv, _ := searchServer(t, []int{10, 12, 11, 13, 14}, 2, 4)
	_, err := fetch(t, windowConfig(srv.URL))
	wantConfig(t, err, "UnsortedResults")
	if !strings.Contains(err.Error(), "record 3") {
		t.Errorf("%v: want the record named", err)
	}
}
