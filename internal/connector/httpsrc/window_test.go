package httpsrc

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/connector"
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

func TestUnwrap(t *testing.T) {
	srv := serve(t, nil, `{"data":[
		{"id":"evt_2","created":200,"data":{"object":{"id":"sub_1","created":10,"status":"active"}}},
		{"id":"evt_1","created":100,"data":{"object":"not an object"}}],"has_more":false}`)
	src, err := New(Config{URL: srv.URL, RecordsPath: "data", RecordPath: "data.object", WatermarkField: "created",
		Pagination: Pagination{Type: PaginationCursor, CursorRecordField: "id", CursorParam: "starting_after", HasMorePath: "has_more"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = src.Fetch(t.Context(), func(rec connector.Record, recErr *connector.RecordError) error {
		if recErr != nil {
			got = append(got, recErr.Error())
			return nil
		}
		got = append(got, fmt.Sprint(rec.Fields, rec.Values))
		return nil
	})
	want := []string{`[id status created] [sub_1 active 200]`, `record 2: no JSON object at "data.object" (incremental.recordPath)`}
	if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %q (%v), want %q: the object with the event's created", got, err, want)
	}
}

// The incremental URL gets the credentials: it must be where spec.http.url is.
func TestIncrementalURLSameHost(t *testing.T) {
	since := time.Now()
	for inc, ok := range map[string]bool{
		"https://api.example.com/v1/events": true, "https://API.example.com/x": true,
		"https://evil.example.net/v1/events": false, "http://api.example.com/v1/events": false, "https://api.example.com:8443/": false,
	} {
		spec := &v1alpha1.DataSourceSpec{HTTP: &v1alpha1.HTTPSource{URL: "https://api.example.com/v1/subscriptions",
			Incremental: &v1alpha1.HTTPIncremental{WatermarkField: "created", Param: "created[gte]", URL: inc}}}
		cfg, err := FromSpec(spec, &since, nil)
		if ok != (err == nil) || (ok && cfg.URL != inc) {
			t.Errorf("%s: %v (URL %s)", inc, err, cfg.URL)
		}
		if !ok {
			wantConfig(t, err, "InvalidIncremental")
		}
	}
}

// A Retry-After longer than the sync has left interrupts the listing at that
// page; the next sync, given the position, goes on from it: no page is asked
// twice but the throttled one, and record numbers run on.
func TestInterruptedResumes(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	throttled := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		c := r.URL.Query().Get("cursor")
		asked = append(asked, c)
		if c == "2" && !throttled {
			throttled = true
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		n, _ := strconv.Atoi(c)
		next := `,"next":"` + strconv.Itoa(n+1) + `"`
		if n == 3 {
			next = ""
		}
		_, _ = fmt.Fprintf(w, `{"data":[{"id":"p%da"},{"id":"p%db"}]%s}`, n, n, next)
	}))
	t.Cleanup(srv.Close)
	cfg := Config{URL: srv.URL + "/?cursor=1", RecordsPath: "data", Timeout: 2 * time.Second, Limits: Limits{MaxRetries: 3},
		Pagination: Pagination{Type: PaginationCursor, CursorPath: "next", CursorParam: "cursor"}}
	first, err := fetch(t, cfg)
	var intr *connector.Interrupted
	if !errors.As(err, &intr) || intr.Wait != 30*time.Second || connector.IsConfig(err) {
		t.Fatalf("got %v, want an Interrupted (not a configuration error) waiting 30s", err)
	}
	second, err := fetch(t, cfg, WithResume(intr.Resume))
	wantIDs(t, second, err, "p2a", "p2b", "p3a", "p3b")
	if !reflect.DeepEqual(first.ids, []string{"p1a", "p1b"}) || !reflect.DeepEqual(second.nums, []int64{3, 4, 5, 6}) {
		t.Errorf("first sync %v; second's record numbers %v", first.ids, second.nums)
	}
	if want := []string{"1", "2", "2", "3"}; !reflect.DeepEqual(asked, want) {
		t.Errorf("asked %v, want %v: resumed at the throttled page", asked, want)
	}
}
