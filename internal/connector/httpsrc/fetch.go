package httpsrc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/format"
)

// Fetch reads every page, in order; record numbers run on across pages.
func (s *source) Fetch(ctx context.Context, visit connector.Visitor) error {
	runCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// Each source has its own transport: do not leave its connections behind.
	defer s.transport.CloseIdleConnections()
	r := run{visit: visit}
	err := s.fetch(runCtx, &r)
	switch {
	case err == nil || r.failed:
		return err // the visitor's own error goes back untouched
	case ctx.Err() != nil:
		return fmt.Errorf("HTTP source %s: %w", redact(s.url), ctx.Err())
	case runCtx.Err() != nil:
		// Whatever the transport said, the cause is our deadline.
		return fmt.Errorf("HTTP source %s: sync timed out after %s: %w", redact(s.url), s.timeout, context.DeadlineExceeded)
	}
	return err
}

// run is one sync. It remembers whether the visitor failed, so that the
// visitor's error is returned untouched.
type run struct {
	visit  connector.Visitor
	failed bool
}

func (r *run) record(rec connector.Record, recErr *connector.RecordError) error {
	err := r.visit(rec, recErr)
	r.failed = err != nil
	return err
}

func (s *source) fetch(ctx context.Context, r *run) error {
	u := s.url
	var num int64
	for page := 1; ; page++ {
		res, err := s.get(ctx, u, page, num, r)
		if err != nil {
			return err
		}
		num += res.records
		next, err := s.next(res, u)
		switch {
		case err != nil:
			return onPage(u, page, err)
		case next == nil:
			return nil
		case page >= s.page.MaxPages:
			return connector.Configf("TooManyPages", "%s has more than %d pages", redact(s.url), s.page.MaxPages)
		case next.String() == u.String():
			return connector.Configf("PaginationLoop", "page %d of %s links to itself", page, redact(s.url))
		}
		u = next
	}
}

// pageName names a page in messages.
func pageName(u *url.URL, page int) string {
	return fmt.Sprintf("GET %s (page %d)", redact(u), page)
}

// onPage prefixes a ConfigError's message with the page it concerns.
func onPage(u *url.URL, page int, err error) error {
	var ce *connector.ConfigError
	if errors.As(err, &ce) {
		return connector.Configf(ce.Reason, "%s: %s", pageName(u, page), ce.Message)
	}
	return err
}

// get fetches one page and streams its records to visit (stream.go).
func (s *source) get(ctx context.Context, u *url.URL, page int, numBase int64, r *run) (pageResult, error) {
	where := pageName(u, page)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return pageResult{}, connector.Configf("InvalidURL", "%s: cannot build the request", where)
	}
	req.Header = s.header.Clone()
	resp, err := s.client.Do(req)
	if err != nil {
		return pageResult{}, requestError(where, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if err := statusError(where, resp.StatusCode); err != nil {
		return pageResult{}, err
	}
	tooLarge := connector.Configf("ResponseTooLarge", "%s: the response is larger than %d bytes", where, s.maxBytes)
	if resp.ContentLength > s.maxBytes {
		return pageResult{}, tooLarge
	}
	res, err := streamPage(ctx, &capped{r: resp.Body, left: s.maxBytes}, s.records, s.tokenPath(), numBase, r.record)
	switch {
	case err == nil || r.failed:
		return res, err // the visitor's error goes back untouched
	case connector.IsConfig(err):
		return res, onPage(u, page, err)
	case errors.Is(err, errTooLarge):
		return res, tooLarge
	}
	return res, fmt.Errorf("%s: %w", where, err)
}

// tokenPath is the path of the pagination token in a page, "" for none.
func (s *source) tokenPath() string {
	switch s.page.Type {
	case PaginationNextLink:
		return s.page.NextLinkPath
	case PaginationCursor:
		return s.page.CursorPath
	}
	return ""
}

// requestError classifies a failed request. *url.Error is unwrapped because
// its message repeats the full URL, query included.
func requestError(where string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if cerr := connectError(where, ue, err); cerr != nil {
		return cerr
	}
	switch {
	case errors.Is(err, errCrossHost):
		return connector.Configf("CrossHostRedirect", "%s: %v", where, err)
	case errors.Is(err, errTooManyRedirects):
		return connector.Configf("TooManyRedirects", "%s: %v", where, err)
	case isVerification(err):
		// An untrusted or mismatched certificate needs a CA or URL change.
		return connector.Configf("TLSVerificationFailed", "%s: %v", where, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}

func isVerification(err error) bool {
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// statusError maps a non-2xx status: client errors are the user's to fix,
// server errors, 408 and 429 are worth retrying. The server's reason phrase is
// not quoted, only the standard text.
func statusError(where string, code int) error {
	status := fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return connector.Configf("AuthenticationFailed", "%s: %s", where, status)
	case code == http.StatusNotFound:
		return connector.Configf("NotFound", "%s: %s", where, status)
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("%s: %s", where, status)
	}
	return connector.Configf("HTTPError", "%s: %s", where, status)
}

// next returns the URL of the page after cur, or nil at the end.
func (s *source) next(res pageResult, cur *url.URL) (*url.URL, error) {
	switch s.page.Type {
	case PaginationNextLink:
		return s.nextLink(res, cur)
	case PaginationCursor:
		return s.nextCursor(res)
	}
	return nil, nil
}

func (s *source) nextLink(res pageResult, cur *url.URL) (*url.URL, error) {
	path := s.page.NextLinkPath
	link, err := pageToken(res, path, "next link")
	if err != nil || link == "" {
		return nil, err
	}
	next, err := cur.Parse(link)
	if err != nil || (next.Scheme != "http" && next.Scheme != "https") {
		return nil, connector.Configf("InvalidPagination", "the next link at %q is not a valid http(s) URL", path)
	}
	if next.User != nil || !sameOrigin(s.url, next) {
		return nil, connector.Configf("CrossHostNextLink",
			"the next link at %q points to another host or scheme, which would receive the credentials", path)
	}
	next.Fragment, next.RawFragment = "", ""
	return next, nil
}

// nextCursor sets the cursor parameter on the configured URL.
func (s *source) nextCursor(res pageResult) (*url.URL, error) {
	cursor, err := pageToken(res, s.page.CursorPath, "cursor")
	if err != nil || cursor == "" {
		return nil, err
	}
	next := *s.url
	q := next.Query()
	q.Set(s.page.CursorParam, cursor)
	next.RawQuery = q.Encode()
	return &next, nil
}

// pageToken reads a next link or cursor at path: missing, null or "" is "".
func pageToken(res pageResult, path, what string) (string, error) {
	v := res.token
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
