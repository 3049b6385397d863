package httpsrc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/internal/connector"
)

const secret = "s3cr3t-T0KEN"

// result is what a Fetch handed to its visitor.
type result struct {
	ids  []string // the "id" of each record, as text
	nums []int64
	errs []int64 // Nums of record errors
}

func fetch(t *testing.T, cfg Config, opts ...Option) (result, error) {
	t.Helper()
	src, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var r result
	err = src.Fetch(t.Context(), func(rec connector.Record, recErr *connector.RecordError) error {
		if recErr != nil {
			r.errs = append(r.errs, recErr.Num)
			return nil
		}
		id, _ := rec.Get("id")
		r.ids = append(r.ids, fmt.Sprint(id))
		r.nums = append(r.nums, rec.Num)
		return nil
	})
	return r, err
}

// serve starts a server answering with body for every request it accepts.
func serve(t *testing.T, check func(r *http.Request) bool, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if check != nil && !check(r) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = write(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func write(w http.ResponseWriter, body string) (int, error) { return w.Write([]byte(body)) }

func wantIDs(t *testing.T, r result, err error, ids ...string) {
	t.Helper()
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if !reflect.DeepEqual(r.ids, ids) {
		t.Fatalf("ids %v, want %v", r.ids, ids)
	}
}

func wantConfig(t *testing.T, err error, reason string) {
	t.Helper()
	if connector.ConfigReason(err) != reason {
		t.Fatalf("err = %v, want ConfigError %s", err, reason)
	}
	noSecret(t, err)
}

func wantTransient(t *testing.T, err error) {
	t.Helper()
	if err == nil || connector.IsConfig(err) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	noSecret(t, err)
}

func noSecret(t *testing.T, err error) {
	t.Helper()
	t.Logf("error: %v", err)
	if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "?")) {
		t.Fatalf("error reveals a secret or a query: %v", err)
	}
}

func TestAuthAndHeaders(t *testing.T) {
	body := `[{"id":1},{"id":2}]`
	t.Run("bearer", func(t *testing.T) {
		srv := serve(t, func(r *http.Request) bool {
			return r.Header.Get("Authorization") == "Bearer "+secret && r.Header.Get("Accept") == "application/json"
		}, body)
		r, err := fetch(t, Config{URL: srv.URL, BearerToken: secret})
		wantIDs(t, r, err, "1", "2")
		if !reflect.DeepEqual(r.nums, []int64{1, 2}) {
			t.Errorf("nums %v", r.nums)
		}
	})
	t.Run("basic", func(t *testing.T) {
		srv := serve(t, func(r *http.Request) bool {
			u, p, ok := r.BasicAuth()
			return ok && u == "svc" && p == secret
		}, body)
		r, err := fetch(t, Config{URL: srv.URL, Username: "svc", Password: secret})
		wantIDs(t, r, err, "1", "2")
	})
	t.Run("custom headers", func(t *testing.T) {
		srv := serve(t, func(r *http.Request) bool {
			return r.Header.Get("X-Api-Key") == secret && r.Header.Get("Accept") == "application/vnd.api+json"
		}, body)
		r, err := fetch(t, Config{URL: srv.URL, Headers: map[string]string{"x-api-key": secret, "Accept": "application/vnd.api+json"}})
		wantIDs(t, r, err, "1", "2")
	})
	t.Run("401 hides the token and the query", func(t *testing.T) {
		srv := serve(t, func(*http.Request) bool { return false }, body)
		_, err := fetch(t, Config{URL: srv.URL + "/users?api_key=" + secret, BearerToken: secret,
			Headers: map[string]string{"X-Other": secret}})
		wantConfig(t, err, "AuthenticationFailed")
		if !strings.Contains(err.Error(), srv.URL+"/users") {
			t.Errorf("error does not name the URL: %v", err)
		}
	})
}

func TestStatuses(t *testing.T) {
	cases := []struct {
		code   int
		config string // "" = transient
	}{
		{http.StatusForbidden, "AuthenticationFailed"},
		{http.StatusNotFound, "NotFound"},
		{http.StatusBadRequest, "HTTPError"},
		{http.StatusGone, "HTTPError"},
		{http.StatusInternalServerError, ""},
		{http.StatusBadGateway, ""},
		{http.StatusTooManyRequests, ""},
		{http.StatusRequestTimeout, ""},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "echo "+r.Header.Get("Authorization"), tc.code)
			}))
			defer srv.Close()
			_, err := fetch(t, Config{URL: srv.URL, BearerToken: secret})
			if tc.config == "" {
				wantTransient(t, err)
			} else {
				wantConfig(t, err, tc.config)
			}
		})
	}
}

func TestRecordsPath(t *testing.T) {
	srv := serve(t, nil, `{"data":{"users":[{"id":"a"},"x",{"id":"b"}]},"meta":{}}`)
	r, err := fetch(t, Config{URL: srv.URL, RecordsPath: "data.users"})
	wantIDs(t, r, err, "a", "b")
	if !reflect.DeepEqual(r.errs, []int64{2}) || !reflect.DeepEqual(r.nums, []int64{1, 3}) {
		t.Errorf("errs %v nums %v", r.errs, r.nums)
	}
	_, err = fetch(t, Config{URL: srv.URL, RecordsPath: "data.missing"})
	wantConfig(t, err, "InvalidRecordsPath")
	_, err = fetch(t, Config{URL: srv.URL, RecordsPath: "meta"})
	wantConfig(t, err, "InvalidRecordsPath")
}

// pager serves pages keyed by "path?query"; it counts requests.
type pager struct {
	pages map[string]string
	hits  atomic.Int32
}

func (p *pager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.hits.Add(1)
	body, ok := p.pages[r.URL.RequestURI()]
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = write(w, body)
}

func TestNextLink(t *testing.T) {
	p := &pager{}
	srv := httptest.NewServer(p)
	defer srv.Close()
	p.pages = map[string]string{
		"/users?limit=2":        `{"items":[{"id":1},{"id":2}],"links":{"next":"/users?limit=2&page=2"}}`,
		"/users?limit=2&page=2": `{"items":[{"id":3},"bad"],"links":{"next":"` + srv.URL + `/users?limit=2&page=3"}}`,
		"/users?limit=2&page=3": `{"items":[{"id":5}],"links":{"next":null}}`,
	}
	cfg := Config{URL: srv.URL + "/users?limit=2", RecordsPath: "items",
		Pagination: Pagination{Type: PaginationNextLink, NextLinkPath: "links.next"}}
	r, err := fetch(t, cfg)
	wantIDs(t, r, err, "1", "2", "3", "5")
	if !reflect.DeepEqual(r.nums, []int64{1, 2, 3, 5}) || !reflect.DeepEqual(r.errs, []int64{4}) {
		t.Errorf("nums %v errs %v", r.nums, r.errs)
	}

	t.Run("MaxPages", func(t *testing.T) {
		cfg := cfg
		cfg.Pagination.MaxPages = 2
		_, err := fetch(t, cfg)
		wantConfig(t, err, "TooManyPages")
	})
	t.Run("loop", func(t *testing.T) {
		p.pages["/loop"] = `{"items":[],"next":"/loop"}`
		_, err := fetch(t, Config{URL: srv.URL + "/loop", RecordsPath: "items",
			Pagination: Pagination{Type: PaginationNextLink, NextLinkPath: "next"}})
		wantConfig(t, err, "PaginationLoop")
	})
	t.Run("other host", func(t *testing.T) {
		other := &pager{pages: map[string]string{"/x": `{"items":[]}`}}
		otherSrv := httptest.NewServer(other)
		defer otherSrv.Close()
		p.pages["/away"] = `{"items":[],"next":"` + otherSrv.URL + `/x"}`
		_, err := fetch(t, Config{URL: srv.URL + "/away", RecordsPath: "items", BearerToken: secret,
			Pagination: Pagination{Type: PaginationNextLink, NextLinkPath: "next"}})
		wantConfig(t, err, "CrossHostNextLink")
		if other.hits.Load() != 0 {
			t.Error("the other host was contacted")
		}
	})
	t.Run("not a string", func(t *testing.T) {
		p.pages["/num"] = `{"items":[],"next":{"href":"/x"}}`
		_, err := fetch(t, Config{URL: srv.URL + "/num", RecordsPath: "items",
			Pagination: Pagination{Type: PaginationNextLink, NextLinkPath: "next"}})
		wantConfig(t, err, "InvalidPagination")
	})
}

func TestCursor(t *testing.T) {
	p := &pager{pages: map[string]string{
		"/users?limit=2":                             `{"data":[{"id":1},{"id":2}],"meta":{"cursor":"c2"}}`,
		"/users?cursor=c2&limit=2":                   `{"data":[{"id":3},{"id":4}],"meta":{"cursor":12345678901234567890}}`,
		"/users?cursor=12345678901234567890&limit=2": `{"data":[{"id":5}],"meta":{"cursor":""}}`,
	}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	r, err := fetch(t, Config{URL: srv.URL + "/users?limit=2", RecordsPath: "data",
		Pagination: Pagination{Type: PaginationCursor, CursorPath: "meta.cursor", CursorParam: "cursor"}})
	wantIDs(t, r, err, "1", "2", "3", "4", "5")
	if !reflect.DeepEqual(r.nums, []int64{1, 2, 3, 4, 5}) {
		t.Errorf("nums %v", r.nums)
	}
}

func TestBodyLimit(t *testing.T) {
	body := `[{"id":"` + strings.Repeat("x", 1000) + `"}]`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		_, _ = write(w, body)
	}))
	defer srv.Close()
	for _, path := range []string{"/", "/chunked"} {
		_, err := fetch(t, Config{URL: srv.URL + path, MaxResponseBytes: int64(len(body) - 1)})
		wantConfig(t, err, "ResponseTooLarge")
		r, err := fetch(t, Config{URL: srv.URL + path, MaxResponseBytes: int64(len(body))})
		if err != nil || len(r.ids) != 1 {
			t.Errorf("%s at the limit: %v", path, err)
		}
	}
}

func TestTransientFailures(t *testing.T) {
	t.Run("malformed JSON", func(t *testing.T) {
		srv := serve(t, nil, `[{"id":"`+secret+`"`)
		_, err := fetch(t, Config{URL: srv.URL})
		wantTransient(t, err)
	})
	t.Run("HTML", func(t *testing.T) {
		srv := serve(t, nil, `<html>`+secret+`</html>`)
		_, err := fetch(t, Config{URL: srv.URL})
		wantTransient(t, err)
	})
	t.Run("slow server", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}))
		defer srv.Close()
		start := time.Now()
		_, err := fetch(t, Config{URL: srv.URL, Timeout: 200 * time.Millisecond})
		wantTransient(t, err)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("err = %v after %v, want a deadline error soon", err, time.Since(start))
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		_, err := fetch(t, Config{URL: url + "/x?token=" + secret})
		wantTransient(t, err)
	})
}

func TestStops(t *testing.T) {
	srv := serve(t, nil, `[{"id":1},{"id":2}]`)
	src, err := New(Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	err = src.Fetch(t.Context(), func(connector.Record, *connector.RecordError) error { return stop })
	if err != stop {
		t.Errorf("err = %v, want the visitor's error", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	err = src.Fetch(ctx, func(connector.Record, *connector.RecordError) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}

	// Cancelled while waiting for the server.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer slow.Close()
	src, _ = New(Config{URL: slow.URL})
	ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err = src.Fetch(ctx, func(connector.Record, *connector.RecordError) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) || connector.IsConfig(err) {
		t.Errorf("err = %v, want the caller's deadline", err)
	}
}

func TestRedirects(t *testing.T) {
	other := &pager{pages: map[string]string{"/x": `[{"id":"other"}]`}}
	otherSrv := httptest.NewServer(other)
	defer otherSrv.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, otherSrv.URL+"/x", http.StatusFound)
		case "/moved":
			http.Redirect(w, r, "/here", http.StatusMovedPermanently)
		case "/here":
			if r.Header.Get("X-Api-Key") != secret {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			_, _ = write(w, `[{"id":"here"}]`)
		}
	}))
	defer srv.Close()
	headers := map[string]string{"X-Api-Key": secret}

	r, err := fetch(t, Config{URL: srv.URL + "/moved", Headers: headers})
	wantIDs(t, r, err, "here")

	_, err = fetch(t, Config{URL: srv.URL + "/away", Headers: headers, BearerToken: ""})
	wantConfig(t, err, "CrossHostRedirect")
	if other.hits.Load() != 0 {
		t.Error("the redirect to another host was followed")
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = write(w, `[{"id":"tls"}]`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	r, err := fetch(t, Config{URL: srv.URL, CAPEM: caPEM})
	wantIDs(t, r, err, "tls")

	_, err = fetch(t, Config{URL: srv.URL})
	wantConfig(t, err, "TLSVerificationFailed")

	// An injected transport's roots are used, and CAPEM adds to them.
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	injected := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	r, err = fetch(t, Config{URL: srv.URL}, WithTransport(injected))
	wantIDs(t, r, err, "tls")
	r, err = fetch(t, Config{URL: srv.URL, CAPEM: caPEM}, WithTransport(&http.Transport{}))
	wantIDs(t, r, err, "tls")
}

func TestNewRejects(t *testing.T) {
	cases := []struct {
		name   string
		cfg    Config
		reason string
	}{
		{"no scheme", Config{URL: "example.com/x?key=" + secret}, "InvalidURL"},
		{"ftp", Config{URL: "ftp://example.com/"}, "InvalidURL"},
		{"bad URL", Config{URL: "http://exa mple.com/%zz?key=" + secret}, "InvalidURL"},
		{"credentials in URL", Config{URL: "https://user:" + secret + "@example.com/"}, "InvalidURL"},
		{"bad CA", Config{URL: "https://example.com/", CAPEM: []byte("not a cert " + secret)}, "InvalidCA"},
		{"header value", Config{URL: "https://example.com/", Headers: map[string]string{"X-Key": secret + "\r\nX-Evil: 1"}}, "InvalidHeader"},
		{"header name", Config{URL: "https://example.com/", Headers: map[string]string{"X Key": secret}}, "InvalidHeader"},
		{"header twice", Config{URL: "https://example.com/", Headers: map[string]string{"x-key": "", "X-Key": secret}}, "InvalidHeader"},
		{"token", Config{URL: "https://example.com/", BearerToken: secret + "\n"}, "InvalidAuth"},
		{"both auths", Config{URL: "https://example.com/", BearerToken: secret, Username: "u"}, "InvalidAuth"},
		{"auth header and token", Config{URL: "https://example.com/", BearerToken: secret,
			Headers: map[string]string{"authorization": secret}}, "InvalidAuth"},
		{"colon in username", Config{URL: "https://example.com/", Username: "a:b", Password: secret}, "InvalidAuth"},
		{"pagination type", Config{URL: "https://example.com/", Pagination: Pagination{Type: "Pages"}}, "InvalidPagination"},
		{"next link path", Config{URL: "https://example.com/", Pagination: Pagination{Type: PaginationNextLink}}, "InvalidPagination"},
		{"cursor param", Config{URL: "https://example.com/", Pagination: Pagination{Type: PaginationCursor, CursorPath: "c"}}, "InvalidPagination"},
		{"negative timeout", Config{URL: "https://example.com/", Timeout: -1}, "InvalidConfig"},
		{"body with GET", Config{URL: "https://example.com/", Body: `{}`}, "InvalidBody"},
		{"POST without body", Config{URL: "https://example.com/", Method: "POST"}, "InvalidBody"},
		{"PUT", Config{URL: "https://example.com/", Method: "PUT", Body: `{}`}, "InvalidBody"},
		{"body not JSON", Config{URL: "https://example.com/", Method: "POST", Body: `{"q":"` + secret}, "InvalidBody"},
		{"body cursor without Cursor paging", Config{URL: "https://example.com/", Method: "POST", Body: `{"after":"{cursor}"}`}, "InvalidBody"},
		{"cursor in the body and a parameter", Config{URL: "https://example.com/", Method: "POST", Body: `{"after":"{cursor}"}`,
			Pagination: Pagination{Type: PaginationCursor, CursorPath: "c", CursorParam: "after"}}, "InvalidPagination"},
		{"incremental with no place for the watermark", Config{URL: "https://example.com/", Method: "POST", Body: `{}`,
			Since: &Since{Time: time.Now()}}, "InvalidIncremental"},
		{"maxResults without {since}", Config{URL: "https://example.com/", Method: "POST", Body: `{}`, MaxResults: 10, WatermarkField: "u"}, "InvalidPagination"},
		{"maxResults without a watermark field", Config{URL: "https://example.com/", Method: "POST", Body: `{"v":"{since}"}`, MaxResults: 10}, "InvalidPagination"},
		{"body format", Config{URL: "https://example.com/", Method: "POST", Body: `{"v":"{since}"}`, SinceFormat: "Days"}, "InvalidIncremental"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			wantConfig(t, err, tc.reason)
		})
	}
}

func TestSameOrigin(t *testing.T) {
	cases := []struct {
		orig, next string
		ok         bool
	}{
		{"https://api.example.com/a", "https://API.example.com:443/b", true},
		{"http://api.example.com/a", "https://api.example.com/b", true},
		{"https://api.example.com/a", "http://api.example.com/b", false},
		{"https://api.example.com/a", "https://api.example.com:8443/b", false},
		{"https://api.example.com/a", "https://evil.example.com/a", false},
	}
	for _, tc := range cases {
		o, _ := parseURL(tc.orig)
		n, _ := parseURL(tc.next)
		if got := sameOrigin(o, n); got != tc.ok {
			t.Errorf("sameOrigin(%s, %s) = %v", tc.orig, tc.next, got)
		}
	}
}

// The records handed out are decoded as the format package documents.
func TestValues(t *testing.T) {
	srv := serve(t, nil, `[{"id":12345678901234567890,"tags":["a"],"ok":true,"n":null}]`)
	src, _ := New(Config{URL: srv.URL})
	var got map[string]any
	err := src.Fetch(t.Context(), func(rec connector.Record, _ *connector.RecordError) error {
		got = rec.Map()
		return nil
	})
	want := map[string]any{"id": json.Number("12345678901234567890"), "tags": []any{"a"}, "ok": true, "n": nil}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, %v", got, err)
	}
}
