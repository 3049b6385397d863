package httpsrc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/format"
)

// Fetch reads every page, in order; record numbers run on across pages.
func (s *source) Fetch(ctx context.Context, visit connector.Visitor) error {
	runCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// Each source has its own transport: do not leave its connections behind.
	defer s.transport.CloseIdleConnections()
	r := run{visit: visit, cursorField: s.page.CursorRecordField}
	if s.req.maxResults > 0 {
		r.wmField = s.req.wmField
	}
	if s.recordPath != "" {
		r.recordPath, r.envelopeWM = s.recordPath, s.req.wmField
	}
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
// visitor's error is returned untouched, and the cursor record field of the
// latest record (Stripe's starting_after).
type run struct {
	visit       connector.Visitor
	failed      bool
	cursorField string
	last        any
	// wmField, for a listing of several queries (maxResults), is the field
	// whose largest value, maxWM, starts the next query.
	wmField string
	maxWM   time.Time
	// recordPath is where each element's record is (unwrap), envelopeWM the
	// element's field that becomes the record's watermark.
	recordPath, envelopeWM string
}

func (r *run) record(rec connector.Record, recErr *connector.RecordError) error {
	if r.cursorField != "" && recErr == nil {
		r.last, _ = rec.Get(r.cursorField) // the element's: Stripe pages events by the event's id
	}
	if r.recordPath != "" && recErr == nil {
		rec, recErr = unwrap(rec, r.recordPath, r.envelopeWM)
	}
	if r.wmField != "" && recErr == nil {
		if err := r.watermark(rec); err != nil {
			r.failed = true
			return err
		}
	}
	err := r.visit(rec, recErr)
	r.failed = err != nil
	return err
}

// watermark keeps the largest watermark read. A record older than the one
// before means the results are not sorted by it: the next query, from the
// largest, would skip older records not yet read. Values that do not parse
// are left to datasource.Run, which rejects their records.
func (r *run) watermark(rec connector.Record) error {
	v, _ := rec.Get(r.wmField)
	t, ok := format.Timestamp(v)
	if !ok || t.IsZero() {
		return nil
	}
	if t.Before(r.maxWM) {
		return connector.Configf("UnsortedResults", "record %d is older (by %q) than the one before it: "+
			"pagination.maxResults needs the results sorted by the watermark, ascending", rec.Num, r.wmField)
	}
	r.maxWM = t
	return nil
}

// fetch reads the listing page by page. A page that fails before any of its
// records was visited (a limit, a gateway error, an access token refused) is
// fetched again after a wait, and the listing goes on from it: the position
// (link, cursor, page number, offset) is kept, never the first page asked
// again. A page that fails after some of its records were visited fails the
// sync, which is then not applied: records are never half-read.
//
// A listing of several queries (maxResults) starts a new query from the
// largest watermark read once one has returned maxResults records.
func (s *source) fetch(ctx context.Context, r *run) error {
	first := s.page.first(s.start)
	p := resumePoint{cur: pageReq{u: first, since: s.req.since}, at: listing{page: 1}}
	if s.resume != nil {
		p = *s.resume
		r.last, r.maxWM = p.last, p.maxWM
		s.observe(EventResumed) // a listing a previous sync left at this page
	}
	cur, at, queryStart := p.cur, p.at, p.queryStart // queryStart: records read before the current query
	for ; ; at.page++ {
		res, header, err := s.getPage(ctx, cur, at, r)
		var long *waitTooLong
		if errors.As(err, &long) {
			// Nothing of this page was read: a later sync goes on from it.
			return &connector.Interrupted{Wait: long.wait, Err: err,
				Resume: &resumePoint{cur: cur, at: at, queryStart: queryStart, last: r.last, maxWM: r.maxWM}}
		}
		if err != nil {
			return err
		}
		at.last = r.last
		next, err := s.next(res, header, cur, first, at)
		at.read += res.records
		if err == nil && next != nil && s.req.maxResults > 0 && at.read-queryStart >= s.req.maxResults {
			next, err = s.requery(cur, first, r.maxWM)
			queryStart = at.read
		}
		switch {
		case err != nil:
			return s.onPage(cur.u, at.page, err)
		case next == nil:
			return nil
		case at.page >= s.page.MaxPages:
			return connector.Configf("TooManyPages", "%s has more than %d pages", redact(s.url), s.page.MaxPages)
		case cur.same(next):
			return connector.Configf("PaginationLoop", "page %d of %s links to itself", at.page, redact(s.url))
		}
		cur = *next
	}
}

// resumePoint is where an interrupted listing stopped: the page to ask
// next, and what the run had gathered before it.
type resumePoint struct {
	cur        pageReq
	at         listing
	queryStart int64
	last       any
	maxWM      time.Time
}

// WithResume continues the listing an Interrupted error stopped, from its
// Resume value, which must come from a source of the same configuration.
// Other values are ignored.
func WithResume(position any) Option {
	return func(o *options) {
		if p, ok := position.(*resumePoint); ok {
			o.resume = p
		}
	}
}

// waitTooLong is a page that could not be asked (again) because the wait
// before it would outlast the sync, before any of its records was read.
type waitTooLong struct {
	wait time.Duration
	err  error
}

func (w *waitTooLong) Error() string { return w.err.Error() }
func (w *waitTooLong) Unwrap() error { return w.err }

// requery is the first page of a new query from the largest watermark read,
// once the current query returned as many results as it can. A watermark
// that has not moved (in the body's format) would return the same results
// again: more than maxResults records share it.
func (s *source) requery(cur pageReq, first *url.URL, maxWM time.Time) (*pageReq, error) {
	was, err := formatTime(s.req.sinceFormat, cur.since)
	if err != nil {
		return nil, err
	}
	now, _ := formatTime(s.req.sinceFormat, maxWM)
	if maxWM.Before(cur.since) || now == was {
		return nil, connector.Configf("WatermarkWindowFull", "a query returned its %d results (pagination.maxResults) "+
			"without moving the watermark %q: more records than that share one value, and a new query from it would return them again",
			s.req.maxResults, s.req.wmField)
	}
	return &pageReq{u: first, since: maxWM}, nil
}

// getPage fetches one page, waiting for the budget first, and again after a
// retryable answer as long as none of its records was visited.
func (s *source) getPage(ctx context.Context, cur pageReq, at listing, r *run) (pageResult, http.Header, error) {
	bo := newBackoff(orDefault(s.limits.RetryBase, DefaultRetryBase))
	refreshed, waited := false, false
	for retries := 0; ; {
		if err := s.session.wait(ctx); err != nil {
			werr := s.waitError(cur.u, at.page, err)
			if tooLong(err) {
				return pageResult{}, nil, &waitTooLong{wait: s.session.paused(), err: werr}
			}
			return pageResult{}, nil, werr
		}
		res, a, err := s.get(ctx, cur, at.page, at.read, r)
		if a.header != nil {
			if d := exhaustedFor(a.header, time.Now()); d > 0 {
				s.session.pause(d) // the server's window is spent: the next request waits for it
			}
		}
		switch {
		case err == nil:
			if waited {
				s.observe(EventResumed)
			}
			return res, a.header, nil
		case res.records > 0 || r.failed:
			return res, nil, err
		case a.refused != nil && !refreshed:
			// The access token expired early or was revoked: one new token.
			refreshed = true
			s.session.tokens.invalidate(a.refused)
			s.observe(EventTokenRejected)
			continue
		case !retryable(a.status) || retries >= s.limits.MaxRetries:
			return res, nil, err
		}
		retries++
		if a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable {
			s.observe(EventThrottled)
		}
		wait := retryAfter(a.header, time.Now())
		if wait == 0 {
			wait = bo.NextBackOff()
		}
		if werr := sleep(ctx, wait); werr != nil {
			err = fmt.Errorf("%w; the server asks to wait %s, longer than the sync has left", err, wait.Round(time.Second))
			if tooLong(werr) {
				s.session.pause(wait) // the next sync's first request waits for it
				return pageResult{}, nil, &waitTooLong{wait: wait, err: err}
			}
			return pageResult{}, nil, err
		}
		waited = true
	}
}

// waitError says why no request could be sent.
func (s *source) waitError(u *url.URL, page int, err error) error {
	if tooLong(err) {
		return fmt.Errorf("%s: the request budget (or the server's rate limit) leaves no request before the sync's deadline", s.pageName(u, page))
	}
	return fmt.Errorf("%s: %w", s.pageName(u, page), err)
}

// tooLong reports whether a wait failed because it would outlast the sync
// (ours, or the rate limiter's "would exceed context deadline").
func tooLong(err error) bool {
	return errors.Is(err, errWaitTooLong) || strings.Contains(err.Error(), "exceed context deadline")
}

// errWaitTooLong is a wait that would outlast the sync's deadline.
var errWaitTooLong = errors.New("the wait would outlast the sync's deadline")

func (s *source) observe(event string) {
	if s.observer != nil {
		s.observer(event)
	}
}

// pageName names a page in messages.
func (s *source) pageName(u *url.URL, page int) string {
	return fmt.Sprintf("%s %s (page %d)", s.req.method, redact(u), page)
}

// onPage prefixes a ConfigError's message with the page it concerns.
func (s *source) onPage(u *url.URL, page int, err error) error {
	var ce *connector.ConfigError
	if errors.As(err, &ce) {
		return connector.Configf(ce.Reason, "%s: %s", s.pageName(u, page), ce.Message)
	}
	return err
}

// answer is what a request got back, for the retry decision.
type answer struct {
	status  int
	header  http.Header
	refused *oauth2.Token // the access token the API answered 401 to
}

// get fetches one page and streams its records to visit (stream.go).
func (s *source) get(ctx context.Context, cur pageReq, page int, numBase int64, r *run) (pageResult, answer, error) {
	u := cur.u
	where := s.pageName(u, page)
	var a answer
	body, err := s.body(cur)
	if err != nil {
		return pageResult{}, a, err
	}
	req, err := http.NewRequestWithContext(ctx, s.req.method, u.String(), body)
	if err != nil {
		return pageResult{}, a, connector.Configf("InvalidURL", "%s: cannot build the request", where)
	}
	req.Header = s.header.Clone()
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	var tok *oauth2.Token
	if s.oauth != nil {
		if tok, err = s.session.tokens.token(ctx, s.tokenClient, s.observer); err != nil {
			return pageResult{}, a, err
		}
		tok.SetAuthHeader(req)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return pageResult{}, a, requestError(where, err)
	}
	defer func() { _ = resp.Body.Close() }()
	a.status, a.header = resp.StatusCode, resp.Header
	if resp.StatusCode == http.StatusUnauthorized {
		a.refused = tok
	}
	if err := statusError(where, resp.StatusCode); err != nil {
		return pageResult{}, a, err
	}
	tooLarge := connector.Configf("ResponseTooLarge", "%s: the response is larger than %d bytes", where, s.maxBytes)
	if resp.ContentLength > s.maxBytes {
		return pageResult{}, a, tooLarge
	}
	res, err := streamPage(ctx, &capped{r: resp.Body, left: s.maxBytes}, s.records, s.page.extractPaths(), numBase, r.record)
	switch {
	case err == nil || r.failed:
		return res, a, err // the visitor's error goes back untouched
	case connector.IsConfig(err):
		return res, a, s.onPage(u, page, err)
	case errors.Is(err, errTooLarge):
		return res, a, tooLarge
	}
	return res, a, fmt.Errorf("%s: %w", where, err)
}

// body is a POST's body for cur, nil for a GET.
func (s *source) body(cur pageReq) (io.Reader, error) {
	if s.req.body == nil {
		return nil, nil
	}
	since, err := sinceJSON(s.req.sinceFormat, cur.since)
	if err != nil {
		return nil, err
	}
	b, err := s.req.body.Render(since, cur.cursor)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
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

// unwrap makes the object at path in an element the record (an event's
// data.object), with the element's watermark field (the event's time) in
// place of the object's own. An element without an object there is a
// rejected record, named by the path only.
func unwrap(rec connector.Record, path, wmField string) (connector.Record, *connector.RecordError) {
	v, ok := format.Lookup(rec.Map(), path)
	obj, isObj := v.(map[string]any)
	if !ok || !isObj {
		return rec, &connector.RecordError{Num: rec.Num, Reason: fmt.Sprintf("no JSON object at %q (incremental.recordPath)", path)}
	}
	out := connector.Record{Num: rec.Num, Fields: make([]string, 0, len(obj)+1), Values: make([]any, 0, len(obj)+1)}
	wm, hasWM := rec.Get(wmField)
	hasWM = hasWM && wmField != ""
	for _, k := range sortedKeys(obj) {
		if hasWM && k == wmField {
			continue
		}
		out.Fields, out.Values = append(out.Fields, k), append(out.Values, obj[k])
	}
	if hasWM {
		out.Fields, out.Values = append(out.Fields, wmField), append(out.Values, wm)
	}
	return out, nil
}
