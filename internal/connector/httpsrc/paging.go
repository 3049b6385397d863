package httpsrc

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/format"
)

// One declarative mechanism follows every listing shape: where the next
// position comes from (a link in the body or a Link header, a cursor in the
// body or the last record, a page number or an offset), and what ends the
// listing (no next position, a has-more flag that is false, an end flag that
// is true, the total reached, an empty page).

// The values a page's body is searched for, by index in pageResult.values.
const (
	exToken   = iota // the next link or the cursor
	exHasMore        // false ends the listing
	exEnd            // true ends the listing
	exTotal          // the total record count
	exCount
)

func checkPagination(p Pagination) (Pagination, error) {
	bad := func(msg string) (Pagination, error) { return p, connector.Configf("InvalidPagination", "%s", msg) }
	switch p.Type {
	case "", PaginationNone:
		p.Type = PaginationNone
		if p.HasMorePath != "" || p.EndPath != "" {
			return bad("hasMorePath and endPath need a pagination type")
		}
	case PaginationNextLink:
		if p.NextLinkPath == "" {
			return bad("NextLink pagination needs the path of the next link")
		}
	case PaginationLinkHeader:
	case PaginationCursor:
		if (p.CursorPath == "") == (p.CursorRecordField == "") {
			return bad("Cursor pagination needs exactly one of the cursor path and the cursor record field")
		}
	case PaginationPageNumber:
		if p.PageParam == "" || p.StartPage < 0 || p.StartPage > 1 {
			return bad("PageNumber pagination needs the page parameter and a start page of 0 or 1")
		}
	case PaginationOffset:
		if p.OffsetParam == "" {
			return bad("Offset pagination needs the offset parameter")
		}
	default:
		return bad("unknown pagination type " + strconv.Quote(p.Type) + " (want None, NextLink, LinkHeader, Cursor, PageNumber or Offset)")
	}
	if p.MaxPages < 0 || p.PageSize < 0 || (p.PageSizeParam == "") != (p.PageSize == 0) {
		return bad("maximum pages and page size must not be negative, and the page size goes with its parameter")
	}
	p.MaxPages = orDefault(p.MaxPages, DefaultMaxPages)
	return p, nil
}

// extractPaths are the body paths a page is searched for, by the ex* indices
// ("": not searched).
func (p Pagination) extractPaths() []string {
	paths := make([]string, exCount)
	switch p.Type {
	case PaginationNextLink:
		paths[exToken] = p.NextLinkPath
	case PaginationCursor:
		paths[exToken] = p.CursorPath
	}
	paths[exHasMore], paths[exEnd], paths[exTotal] = p.HasMorePath, p.EndPath, p.TotalPath
	return paths
}

// listing is where one sync stands in the listing: enough to ask for the
// page after the current one, and to resume at the current one after a wait.
type listing struct {
	page int   // 1-based number of the current page
	read int64 // records read before the current page
	// last is the cursor record field of the latest record visited.
	last any
}

// withParams sets query parameters on a copy of u.
func withParams(u *url.URL, kv ...string) *url.URL {
	next := *u
	q := next.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	next.RawQuery = q.Encode()
	return &next
}

// first is the first page's URL: base with the page size and the first
// position set.
func (p Pagination) first(base *url.URL) *url.URL {
	var kv []string
	if p.PageSizeParam != "" {
		kv = append(kv, p.PageSizeParam, strconv.Itoa(p.PageSize))
	}
	switch p.Type {
	case PaginationPageNumber:
		kv = append(kv, p.PageParam, strconv.Itoa(p.StartPage))
	case PaginationOffset:
		kv = append(kv, p.OffsetParam, "0")
	}
	if kv == nil {
		return base
	}
	return withParams(base, kv...)
}

// pageReq is one page's request: its URL, and what a POST body carries.
type pageReq struct {
	u      *url.URL
	cursor string    // the body's "{cursor}" ("": a query's first page)
	since  time.Time // the body's "{since}"
}

// at is a request for u with cur's body values.
func (cur pageReq) at(u *url.URL) *pageReq { return &pageReq{u: u, since: cur.since} }

func (cur pageReq) same(o *pageReq) bool {
	return cur.u.String() == o.u.String() && cur.cursor == o.cursor && cur.since.Equal(o.since)
}

// next returns the request of the page after cur (first: the first page's
// URL, on which cursors, page numbers and offsets are set), or nil at the
// end. res and header are the current page's; at says where the listing
// stands, with the current page's records not yet counted.
func (s *source) next(res pageResult, header http.Header, cur pageReq, first *url.URL, at listing) (*pageReq, error) {
	p := s.page
	if more, err := flag(res, exHasMore, p.HasMorePath, "has-more flag"); err != nil || (p.HasMorePath != "" && !more) {
		return nil, err
	}
	if end, err := flag(res, exEnd, p.EndPath, "end flag"); err != nil || end {
		return nil, err
	}
	read := at.read + res.records
	switch p.Type {
	case PaginationNextLink:
		link, err := pageToken(res.values[exToken], p.NextLinkPath, "next link")
		if err != nil || link == "" {
			return nil, err
		}
		u, err := s.resolve(cur.u, link, "the next link at "+strconv.Quote(p.NextLinkPath))
		if err != nil {
			return nil, err
		}
		return cur.at(u), nil
	case PaginationLinkHeader:
		link := nextLink(header.Values("Link"))
		if link == "" {
			return nil, nil
		}
		u, err := s.resolve(cur.u, link, "the Link header's next link")
		if err != nil {
			return nil, err
		}
		return cur.at(u), nil
	case PaginationCursor:
		what, v := p.CursorPath, res.values[exToken]
		if p.CursorRecordField != "" {
			what, v = p.CursorRecordField, at.last
			if res.records == 0 {
				v = nil // an empty page has no last record: the end
			}
		}
		cursor, err := pageToken(v, what, "cursor")
		if err != nil || cursor == "" {
			return nil, err
		}
		if p.CursorParam == "" { // the body carries it
			n := cur.at(first)
			n.cursor = cursor
			return n, nil
		}
		return cur.at(withParams(first, p.CursorParam, cursor)), nil
	case PaginationPageNumber, PaginationOffset:
		if done, err := s.exhausted(res, read); err != nil || done {
			return nil, err
		}
		if p.Type == PaginationOffset {
			return cur.at(withParams(first, p.OffsetParam, strconv.FormatInt(read, 10))), nil
		}
		return cur.at(withParams(first, p.PageParam, strconv.Itoa(p.StartPage+at.page))), nil
	}
	return nil, nil
}

// exhausted says whether a numbered or offset listing is complete: an empty
// page, or the total read.
func (s *source) exhausted(res pageResult, read int64) (bool, error) {
	if res.records == 0 {
		return true, nil
	}
	if s.page.TotalPath == "" {
		return false, nil
	}
	total, err := totalOf(res, s.page.TotalPath)
	return read >= total, err
}

// resolve parses link relative to cur and refuses one that would carry the
// credentials elsewhere.
func (s *source) resolve(cur *url.URL, link, what string) (*url.URL, error) {
	next, err := cur.Parse(link)
	if err != nil || (next.Scheme != "http" && next.Scheme != "https") {
		return nil, connector.Configf("InvalidPagination", "%s is not a valid http(s) URL", what)
	}
	if next.User != nil || !sameOrigin(s.url, next) {
		return nil, connector.Configf("CrossHostNextLink",
			"%s points to another host or scheme, which would receive the credentials", what)
	}
	next.Fragment, next.RawFragment = "", ""
	return next, nil
}

// pageToken reads a next link or cursor: missing, null or "" is "".
func pageToken(v any, path, what string) (string, error) {
	switch t := v.(type) {
	case nil:
		return "", nil
	case string:
		return t, nil
	case json.Number:
		return string(t), nil
	}
	return "", connector.Configf("InvalidPagination", "the %s at %q is %s, not a string", what, path, format.Kind(v))
}

// flag reads a boolean of the page; a missing one (or none configured) is false.
func flag(res pageResult, i int, path, what string) (bool, error) {
	if path == "" || !res.found[i] || res.values[i] == nil {
		return false, nil
	}
	b, ok := res.values[i].(bool)
	if !ok {
		return false, connector.Configf("InvalidPagination", "the %s at %q is %s, not a boolean", what, path, format.Kind(res.values[i]))
	}
	return b, nil
}

// totalOf reads the page's total record count, a non-negative integer.
func totalOf(res pageResult, path string) (int64, error) {
	n, ok := res.values[exTotal].(json.Number)
	if ok {
		if v, err := n.Int64(); err == nil && v >= 0 {
			return v, nil
		}
	}
	return 0, connector.Configf("InvalidPagination", "the total at %q is not a non-negative integer", path)
}

// nextLink finds the target of rel="next" in RFC 8288 Link header values, ""
// for none. Commas inside <...> and quoted strings do not split links.
func nextLink(values []string) string {
	for _, v := range values {
		for _, link := range splitLinks(v) {
			target, params, ok := strings.Cut(link, ">")
			target = strings.TrimSpace(target)
			if !ok || !strings.HasPrefix(target, "<") {
				continue
			}
			if hasRel(params, "next") {
				return target[1:]
			}
		}
	}
	return ""
}

// splitLinks splits a Link header value at the commas between links.
func splitLinks(v string) []string {
	var out []string
	inURI, inQuote, start := false, false, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"' && !inURI:
			inQuote = !inQuote
		case c == '<' && !inQuote:
			inURI = true
		case c == '>' && !inQuote:
			inURI = false
		case c == ',' && !inURI && !inQuote:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// hasRel reports whether link parameters ("; rel=next; title=...") have a
// rel (a space-separated list, case-insensitive) containing want.
func hasRel(params, want string) bool {
	for _, p := range strings.Split(params, ";") {
		name, value, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "rel") {
			continue
		}
		for _, r := range strings.Fields(strings.Trim(strings.TrimSpace(value), `"`)) {
			if strings.EqualFold(r, want) {
				return true
			}
		}
	}
	return false
}
