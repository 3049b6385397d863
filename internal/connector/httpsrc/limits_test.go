package httpsrc

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{"0", 0},
		{"Fri, 01 May 2026 12:00:30 GMT", 30 * time.Second},
		{"Fri, 01 May 2026 11:00:00 GMT", 0}, // in the past
		{"999999999", maxRetryWait},
		{"soon", 0},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.value != "" {
			h.Set("Retry-After", tc.value)
		}
		if got := retryAfter(h, now); got != tc.want {
			t.Errorf("Retry-After %q: %s, want %s", tc.value, got, tc.want)
		}
	}
}

func TestExhaustedFor(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		h    map[string]string
		want time.Duration
	}{
		{"none", nil, 0},
		{"requests left", map[string]string{"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "30"}, 0},
		{"IETF draft", map[string]string{"RateLimit-Remaining": "0", "RateLimit-Reset": "12"}, 12 * time.Second},
		{"structured", map[string]string{"RateLimit": "limit=100, remaining=0, reset=3"}, 3 * time.Second},
		{"Unix reset", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(now.Add(20*time.Second).Unix(), 10)}, 20 * time.Second},
		{"HubSpot window", map[string]string{"X-HubSpot-RateLimit-Remaining": "0", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, 10 * time.Second},
		{"spent, no reset", map[string]string{"X-RateLimit-Remaining": "0"}, time.Second},
	}
	for _, tc := range cases {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := exhaustedFor(h, now); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestNextLinkHeader(t *testing.T) {
	cases := []struct {
		values []string
		want   string
	}{
		{nil, ""},
		{[]string{`<https://api.example.com/u?page=2>; rel="next", <https://api.example.com/u?page=9>; rel="last"`}, "https://api.example.com/u?page=2"},
		{[]string{`</u?page=1>; rel="prev"`, `</u?page=3>; rel="next"`}, "/u?page=3"},
		{[]string{`</u?a=1,2>; rel="prev next"`}, "/u?a=1,2"},
		{[]string{`</u?p=2>; title="a, b"; rel=next`}, "/u?p=2"},
		{[]string{`</u?p=2>; rel="nextish"`}, ""},
		{[]string{`garbage, <unterminated`}, ""},
	}
	for _, tc := range cases {
		if got := nextLink(tc.values); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.values, got, tc.want)
		}
	}
}

func FuzzNextLink(f *testing.F) {
	for _, s := range []string{`<a>; rel="next"`, `<a,b>; rel=next, <c>; rel="last"`, `"<x>"; rel=next`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = nextLink([]string{s}) // never panics
	})
}

// The request budget holds against a server that would serve 10 pages a
// second and answers 429 above that: with 300 requests a minute, no second
// sees more than the budget allows, no 429 is served, and the sync completes.
func TestBudgetHolds(t *testing.T) {
	const pages, rpm = 12, 300
	var mu sync.Mutex
	var at []time.Time
	throttled := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now := time.Now()
		recent := 0
		for _, ts := range at {
			if now.Sub(ts) < time.Second {
				recent++
			}
		}
		at = append(at, now)
		if recent >= 10 {
			throttled++
			mu.Unlock()
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		mu.Unlock()
		p, _ := strconv.Atoi(r.URL.Query().Get("page"))
		next := ""
		if p < pages {
			next = fmt.Sprintf(`,"next":"?page=%d"`, p+1)
		}
		_, _ = fmt.Fprintf(w, `{"data":[{"id":"u%d"}]%s}`, p, next)
	}))
	defer srv.Close()
	start := time.Now()
	r, err := fetch(t, Config{URL: srv.URL + "/?page=1", RecordsPath: "data", Limits: Limits{RequestsPerMinute: rpm},
		Pagination: Pagination{Type: PaginationNextLink, NextLinkPath: "next"}})
	if err != nil || len(r.ids) != pages {
		t.Fatalf("sync: %d records, %v", len(r.ids), err)
	}
	if throttled != 0 {
		t.Errorf("the server answered 429 %d times", throttled)
	}
	// Evenly spaced at 200 ms: any 1 s window holds at most 1 + 5 requests.
	for i := range at {
		n := 0
		for _, t2 := range at[i:] {
			if t2.Sub(at[i]) < time.Second {
				n++
			}
		}
		if n > 1+rpm/60 {
			t.Fatalf("%d requests within a second from request %d: over the budget of %d a minute", n, i, rpm)
		}
	}
	if min := time.Duration(pages-1) * time.Minute / rpm; time.Since(start) < min {
		t.Errorf("%d pages in %s, under the %s the budget allows", pages, time.Since(start), min)
	}
}

// A wait longer than the sync has left fails the sync at once, as a
// transient error; the records read before are not a result.
func TestRetryAfterBeyondDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("p") == "2" {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = write(w, `{"data":[{"id":"a"}],"next":"?p=2"}`)
	}))
	defer srv.Close()
	start := time.Now()
	_, err := fetch(t, Config{URL: srv.URL, RecordsPath: "data", Timeout: 5 * time.Second, Limits: Limits{MaxRetries: 3},
		Pagination: Pagination{Type: PaginationNextLink, NextLinkPath: "next"}})
	wantTransient(t, err)
	if time.Since(start) > 2*time.Second {
		t.Errorf("waited %s for a Retry-After beyond the deadline", time.Since(start))
	}
}

// A page that fails after some of its records were read is not asked again
// (its records would be read twice): the sync fails.
func TestNoRetryAfterRecords(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Content-Length", "1000")
		_, _ = write(w, `{"data":[{"id":"a"},{"id":"b"},`) // the connection drops mid-body
	}))
	defer srv.Close()
	_, err := fetch(t, Config{URL: srv.URL, RecordsPath: "data", Limits: Limits{MaxRetries: 3, RetryBase: time.Millisecond}})
	wantTransient(t, err)
	if calls != 1 {
		t.Errorf("%d requests: a half-read page was asked again", calls)
	}
}
