package httpsrc

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/time/rate"
)

// Limits is a source's request budget and retry policy.
type Limits struct {
	// RequestsPerMinute caps the API requests of the source, across syncs
	// when the source has a session (WithSession); 0: no budget.
	RequestsPerMinute int
	// MaxRetries is how often one page is tried again after a 429, 502, 503
	// or 504 answered before any of its records was read (0: never).
	MaxRetries int
	// RetryBase is the first backoff wait when the server says nothing
	// (0: DefaultRetryBase); later waits double, with jitter.
	RetryBase time.Duration
}

// Defaults of Limits.
const (
	DefaultRetryBase = time.Second
	maxRetryWait     = 5 * time.Minute
)

// Events reported to an observer (WithObserver), for metrics.
const (
	// EventThrottled: the server answered 429 or 503 (or said its budget is spent).
	EventThrottled = "throttled"
	// EventResumed: a page was fetched after a wait, and the listing went on
	// from there rather than from the first page.
	EventResumed = "resumed"
	// EventTokenFetched: a new OAuth2 access token was obtained.
	EventTokenFetched = "token_fetched"
	// EventTokenRejected: the API refused an access token and a new one was fetched.
	EventTokenRejected = "token_rejected"
)

// WithObserver reports events (Event*) to fn, e.g. to count them in metrics.
func WithObserver(fn func(event string)) Option {
	return func(o *options) { o.observe = fn }
}

// retryable reports whether a status is a limit or a passing failure.
func retryable(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryAfter reads Retry-After (RFC 9110: delay seconds or an HTTP-date); 0
// when absent or unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return clampWait(time.Duration(min(secs, math.MaxInt32)) * time.Second)
	}
	if t, err := http.ParseTime(v); err == nil {
		return clampWait(t.Sub(now))
	}
	return 0
}

func clampWait(d time.Duration) time.Duration {
	return min(max(d, 0), maxRetryWait)
}

// exhaustedFor reads the usual rate-limit headers: when the server says no
// request is left in its window, how long until it resets (0: requests are
// left, or it does not say). RateLimit-* is the IETF draft (reset in seconds),
// X-RateLimit-* the common form (reset in seconds or, above 10^9, a Unix
// time), and HubSpot's X-HubSpot-RateLimit-* gives its window's length.
func exhaustedFor(h http.Header, now time.Time) time.Duration {
	remaining, reset := "", ""
	if v := h.Get("RateLimit"); v != "" { // draft-ietf-httpapi-ratelimit-headers: "limit=10, remaining=0, reset=5"
		remaining, reset = structuredParam(v, "remaining", "r"), structuredParam(v, "reset", "t")
	}
	for _, p := range []string{"RateLimit-", "X-RateLimit-", "X-HubSpot-RateLimit-"} {
		if remaining == "" {
			remaining = h.Get(p + "Remaining")
		}
		if reset == "" {
			reset = h.Get(p + "Reset")
		}
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(remaining), 10, 64); err != nil || n > 0 {
		return 0
	}
	if ms, err := strconv.ParseInt(h.Get("X-HubSpot-RateLimit-Interval-Milliseconds"), 10, 64); err == nil && reset == "" {
		return clampWait(time.Duration(ms) * time.Millisecond)
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(reset), 64)
	switch {
	case err != nil || secs < 0:
		return time.Second // spent, but no reset given: a short pause
	case secs > 1e9:
		return clampWait(time.Unix(int64(secs), 0).Sub(now))
	}
	return clampWait(time.Duration(secs * float64(time.Second)))
}

// structuredParam reads one of names from "a=1, b=2" (or ";"-separated).
func structuredParam(v string, names ...string) string {
	for _, item := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
		k, val, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			continue
		}
		for _, n := range names {
			if strings.EqualFold(k, n) {
				return strings.TrimSpace(val)
			}
		}
	}
	return ""
}

// newBackoff is the wait between retries when the server gives no
// Retry-After: exponential from base, with ±50% jitter so that sources
// throttled together do not retry together.
func newBackoff(base time.Duration) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = base
	b.MaxInterval = maxRetryWait
	b.Reset()
	return b
}

// Sessions keeps what outlives one sync of each HTTP source, by key (the
// DataSource): its request budget, the moment the server's limit resets, and
// its OAuth2 token. A source whose credentials or budget change gets a fresh
// one.
type Sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

// NewSessions returns an empty set of sessions.
func NewSessions() *Sessions { return &Sessions{m: map[string]*session{}} }

// Forget drops a source's session (its DataSource was deleted).
func (s *Sessions) Forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

// WithSession keeps the source's budget and token in sessions under key.
func WithSession(sessions *Sessions, key string) Option {
	return func(o *options) { o.sessions, o.key = sessions, key }
}

// session is one source's state across syncs.
type session struct {
	limiter *rate.Limiter // nil: no budget
	rpm     int

	mu         sync.Mutex
	pauseUntil time.Time // the server said its budget is spent until then
	tokens     *tokenCache
	authKey    string // identifies the credentials the token belongs to
}

// get returns the session for key, replacing its budget when rpm changed and
// its token when the credentials (auth, nil for none) did.
func (s *Sessions) get(key string, rpm int, auth *OAuth2) *session {
	authKey := auth.key()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[key]
	if ss == nil || ss.rpm != rpm {
		old := ss
		ss = newSession(rpm)
		if old != nil {
			ss.tokens, ss.authKey = old.tokens, old.authKey
		}
		s.m[key] = ss
	}
	if ss.authKey != authKey || (auth != nil && ss.tokens == nil) {
		ss.tokens, ss.authKey = nil, authKey
		if auth != nil {
			ss.tokens = &tokenCache{cfg: *auth}
		}
	}
	return ss
}

func newSession(rpm int) *session {
	ss := &session{rpm: rpm}
	if rpm > 0 {
		// A burst of one: requests are spaced evenly, so no window of the
		// server's, however it counts, sees more than the budget.
		ss.limiter = rate.NewLimiter(rate.Every(time.Minute/time.Duration(rpm)), 1)
	}
	return ss
}

// wait blocks until a request may be sent: the server's reset passed and the
// budget has a token.
func (ss *session) wait(ctx context.Context) error {
	ss.mu.Lock()
	until := ss.pauseUntil
	ss.mu.Unlock()
	if err := sleep(ctx, time.Until(until)); err != nil {
		return err
	}
	if ss.limiter == nil {
		return nil
	}
	return ss.limiter.Wait(ctx)
}

// paused is how long requests are still held by the server's reset.
func (ss *session) paused() time.Duration {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return max(time.Until(ss.pauseUntil), 0)
}

// pause holds every request of the session until d from now.
func (ss *session) pause(d time.Duration) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if t := time.Now().Add(d); t.After(ss.pauseUntil) {
		ss.pauseUntil = t
	}
}

// sleep waits d, or fails at once when ctx ends first (or its deadline is
// before d passes: waiting would be for nothing).
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return errWaitTooLong
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
