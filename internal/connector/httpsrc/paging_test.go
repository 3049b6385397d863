package httpsrc

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// Numbered, offset and Link-header listings over the same seven records,
// three a page.
func TestPagingShapes(t *testing.T) {
	const total, size = 7, 3
	page := func(from int) string {
		s := ""
		for i := from; i < min(from+size, total); i++ {
			if s != "" {
				s += ","
			}
			s += fmt.Sprintf(`{"id":"r%d"}`, i)
		}
		return fmt.Sprintf(`{"items":[%s],"total":%d}`, s, total)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("per_page") != strconv.Itoa(size) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/pages": // 1-based page numbers, ended by an empty page
			p, _ := strconv.Atoi(q.Get("page"))
			_, _ = write(w, page((p-1)*size))
		case "/offset":
			o, _ := strconv.Atoi(q.Get("offset"))
			_, _ = write(w, page(o))
		case "/link": // RFC 8288, relative links
			o, _ := strconv.Atoi(q.Get("from"))
			if o+size < total {
				w.Header().Add("Link", fmt.Sprintf(`</link?from=%d&per_page=%d>; rel="next", </link?from=0>; rel="first"`, o+size, size))
			}
			_, _ = write(w, page(o))
		}
	}))
	defer srv.Close()
	want := []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6"}
	cases := []struct {
		name string
		url  string
		p    Pagination
	}{
		{"page numbers, empty page ends", "/pages", Pagination{Type: PaginationPageNumber, PageParam: "page", StartPage: 1}},
		{"page numbers, total ends", "/pages", Pagination{Type: PaginationPageNumber, PageParam: "page", StartPage: 1, TotalPath: "total"}},
		{"offset, total ends", "/offset", Pagination{Type: PaginationOffset, OffsetParam: "offset", TotalPath: "total"}},
		{"Link header", "/link", Pagination{Type: PaginationLinkHeader}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.PageSizeParam, tc.p.PageSize = "per_page", size
			r, err := fetch(t, Config{URL: srv.URL + tc.url, RecordsPath: "items", Pagination: tc.p})
			wantIDs(t, r, err, want...)
		})
	}
}

func TestPagingConfig(t *testing.T) {
	for _, p := range []Pagination{
		{Type: PaginationCursor, CursorParam: "c"},
		{Type: PaginationCursor, CursorParam: "c", CursorPath: "a", CursorRecordField: "id"},
		{Type: PaginationPageNumber},
		{Type: PaginationPageNumber, PageParam: "p", StartPage: 2},
		{Type: PaginationOffset},
		{Type: PaginationNone, HasMorePath: "has_more"},
		{Type: PaginationLinkHeader, PageSizeParam: "limit"},
		{Type: "Pages"},
	} {
		_, err := New(Config{URL: "https://example.com/", Pagination: p})
		wantConfig(t, err, "InvalidPagination")
	}
}

// A has-more flag that is not a boolean, and a total that is not a count,
// fail the sync rather than end the listing silently.
func TestPagingFlagsTyped(t *testing.T) {
	srv := serve(t, nil, `{"items":[{"id":"a"}],"has_more":"yes","total":"many","next":"?p=2"}`)
	_, err := fetch(t, Config{URL: srv.URL, RecordsPath: "items", Pagination: Pagination{Type: PaginationNextLink, NextLinkPath: "next", HasMorePath: "has_more"}})
	wantConfig(t, err, "InvalidPagination")
	_, err = fetch(t, Config{URL: srv.URL, RecordsPath: "items", Pagination: Pagination{Type: PaginationOffset, OffsetParam: "o", TotalPath: "total"}})
	wantConfig(t, err, "InvalidPagination")
}
