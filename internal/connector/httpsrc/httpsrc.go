package httpsrc

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/netguard"
)

// Pagination types.
const (
	PaginationNone       = "None"
	PaginationNextLink   = "NextLink"
	PaginationLinkHeader = "LinkHeader"
	PaginationCursor     = "Cursor"
	PaginationPageNumber = "PageNumber"
	PaginationOffset     = "Offset"
)

// Defaults for zero Config fields.
const (
	DefaultTimeout          = 5 * time.Minute
	DefaultMaxResponseBytes = 64 << 20
	DefaultMaxPages         = 1000
)

// Config describes one API listing.
type Config struct {
	URL     string
	Headers map[string]string
	// BearerToken, if set, is sent as "Authorization: Bearer <token>".
	BearerToken string
	// Username and Password are sent as basic auth when Username is set.
	Username, Password string
	// CAPEM holds extra trusted CA certificates, added to the system pool.
	CAPEM []byte
	// Timeout bounds the whole sync, all pages included (0: DefaultTimeout).
	Timeout time.Duration
	// MaxResponseBytes bounds each response body (0: DefaultMaxResponseBytes).
	MaxResponseBytes int64
	// RecordsPath is the dot path of the records array in each response ("":
	// the response is the array); see format.Lookup.
	RecordsPath string
	Pagination  Pagination
	// OAuth2, if set, gets the bearer token from a token endpoint (oauth.go).
	OAuth2 *OAuth2
	// Limits are the request budget and the retry policy (limits.go).
	Limits Limits
	// Since, if set, makes this an incremental sync: the watermark goes in a
	// query parameter of the first page, or in the body's "{since}".
	Since *Since
	// Method is GET ("") or POST, which sends Body with every page.
	Method string
	// Body is a POST's JSON body template (body.go).
	Body string
	// SinceFormat is the watermark format of the body's "{since}" when Since
	// is nil: a full load sends the Unix epoch.
	SinceFormat string
	// MaxResults is the most results one query returns (HubSpot's search
	// stops at 10000): once a query returned that many, the listing goes on
	// with a new query whose "{since}" is the largest WatermarkField read so
	// far. The results must be sorted by it, ascending.
	MaxResults     int
	WatermarkField string
	// RecordPath, when set, is the dot path of the record inside each
	// element of the records array (Stripe events: data.object); the
	// element's WatermarkField, when it has one, replaces the record's.
	RecordPath string
}

// Pagination says how to find the next page (paging.go).
type Pagination struct {
	// Type is PaginationNone (or ""), NextLink, LinkHeader, Cursor,
	// PageNumber or Offset.
	Type string
	// NextLinkPath is the dot path of the next page's URL, absolute or relative
	// to the current page; missing, null or "" ends the listing.
	NextLinkPath string
	// CursorPath is the dot path of the next cursor (a string or number), sent
	// as the query parameter CursorParam on the configured URL; missing, null
	// or "" ends the listing. CursorRecordField instead takes the cursor from
	// the page's last record (Stripe's starting_after=<last id>).
	CursorPath, CursorParam, CursorRecordField string
	// HasMorePath is the dot path of a boolean whose false ends the listing;
	// EndPath of one whose true does.
	HasMorePath, EndPath string
	// PageParam (PageNumber, counting from StartPage) and OffsetParam
	// (Offset: records read so far) are the query parameters of the position.
	PageParam   string
	StartPage   int
	OffsetParam string
	// PageSizeParam=PageSize is set on every page, when given.
	PageSizeParam string
	PageSize      int
	// TotalPath is the dot path of the total record count (PageNumber,
	// Offset); without it a page with no records ends the listing.
	TotalPath string
	// MaxPages bounds the pages of one sync (0: DefaultMaxPages); a listing
	// with more pages fails with TooManyPages.
	MaxPages int
}

// Option adjusts a source.
type Option func(*options)

type options struct {
	transport *http.Transport
	policy    *netguard.Policy
	observe   func(string)
	sessions  *Sessions
	key       string
	resume    *resumePoint
}

// WithTransport bases the source's transport on a clone of t (tests, proxies).
// Whatever t says, TLS certificates are verified.
func WithTransport(t *http.Transport) Option {
	return func(o *options) { o.transport = t }
}

type source struct {
	url         *url.URL // the configured URL: credentials go to its origin only
	start       *url.URL // the first page's URL, before pagination parameters
	header      http.Header
	client      *http.Client
	tokenClient *http.Client // for the OAuth2 token endpoint (no API headers)
	transport   *http.Transport
	timeout     time.Duration
	maxBytes    int64
	records     string
	page        Pagination
	limits      Limits
	oauth       *OAuth2
	session     *session
	observer    func(string)
	req         request
	recordPath  string
	resume      *resumePoint // where an interrupted listing goes on
}

// request is how every page is asked for: the method, and a POST's body.
type request struct {
	method string
	body   *Body
	// since is the first query's "{since}", in sinceFormat.
	since       time.Time
	sinceFormat string
	// maxResults and wmField: a query's result cap, and the field whose
	// largest value starts the next query.
	maxResults int64
	wmField    string
}

// checkRequest checks the method, the body and what the body carries.
func checkRequest(cfg Config, page Pagination) (request, error) {
	r := request{method: http.MethodGet, since: time.Unix(0, 0).UTC(), sinceFormat: cfg.SinceFormat,
		maxResults: int64(cfg.MaxResults), wmField: cfg.WatermarkField}
	if cfg.Since != nil {
		r.since, r.sinceFormat = cfg.Since.Time, cfg.Since.Format
	}
	switch cfg.Method {
	case "", http.MethodGet:
		if cfg.Body != "" {
			return r, connector.Configf("InvalidBody", "spec.http.body needs method POST")
		}
	case http.MethodPost:
		if cfg.Body == "" {
			return r, connector.Configf("InvalidBody", "method POST needs spec.http.body")
		}
		b, err := ParseBody(cfg.Body)
		if err != nil {
			return r, err
		}
		r.method, r.body = http.MethodPost, b
	default:
		return r, connector.Configf("InvalidBody", "unknown method %q (want GET or POST)", cfg.Method)
	}
	inBody := func(ok func(*Body) bool) bool { return r.body != nil && ok(r.body) }
	bodyCursor, bodySince := inBody(func(b *Body) bool { return b.Cursor }), inBody(func(b *Body) bool { return b.Since })
	switch {
	case bodyCursor && page.Type != PaginationCursor:
		return r, connector.Configf("InvalidBody", `the body's "{cursor}" needs pagination type Cursor`)
	case page.Type == PaginationCursor && (page.CursorParam == "") == !bodyCursor:
		return r, connector.Configf("InvalidPagination", `Cursor pagination sends the cursor in cursorParam or in the body's "{cursor}": exactly one of them`)
	case cfg.Since != nil && cfg.Since.Param == "" && !bodySince:
		return r, connector.Configf("InvalidIncremental", `an incremental sync needs the watermark's query parameter, or a POST body with "{since}"`)
	case r.maxResults < 0 || (r.maxResults > 0 && (!bodySince || r.wmField == "")):
		return r, connector.Configf("InvalidPagination", `maxResults needs a POST body with "{since}" and the incremental watermark field`)
	}
	_, err := formatTime(r.sinceFormat, r.since)
	return r, err
}

// New checks cfg and returns a source; configuration problems are ConfigErrors.
func New(cfg Config, opts ...Option) (connector.Source, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	u, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	header, err := buildHeader(cfg)
	if err != nil {
		return nil, err
	}
	page, err := checkPagination(cfg.Pagination)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 || cfg.MaxResponseBytes < 0 || cfg.Limits.RequestsPerMinute < 0 || cfg.Limits.MaxRetries < 0 {
		return nil, connector.Configf("InvalidConfig", "timeout, maximum response size, budget and retries must not be negative")
	}
	if cfg.OAuth2 != nil {
		if err := cfg.OAuth2.check(); err != nil {
			return nil, err
		}
	}
	start, err := cfg.Since.apply(u)
	if err != nil {
		return nil, err
	}
	req, err := checkRequest(cfg, page)
	if err != nil {
		return nil, err
	}
	tr, err := newTransport(o.transport, cfg.CAPEM)
	if err != nil {
		return nil, err
	}
	if o.policy == nil {
		p := netguard.Sources()
		o.policy = &p
	}
	guard(tr, *o.policy)
	if o.sessions == nil { // no session kept across syncs: one of its own
		o.sessions, o.key = NewSessions(), "source"
	}
	ss := o.sessions.get(o.key, cfg.Limits.RequestsPerMinute, cfg.OAuth2)
	return &source{
		url:         u,
		start:       start,
		header:      header,
		client:      &http.Client{Transport: tr, CheckRedirect: checkRedirect},
		tokenClient: &http.Client{Transport: tr, CheckRedirect: checkRedirect, Timeout: tokenTimeout},
		transport:   tr,
		timeout:     orDefault(cfg.Timeout, DefaultTimeout),
		maxBytes:    orDefault(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
		records:     cfg.RecordsPath,
		page:        page,
		limits:      cfg.Limits,
		oauth:       cfg.OAuth2,
		session:     ss,
		observer:    o.observe,
		req:         req,
		recordPath:  cfg.RecordPath,
		resume:      o.resume,
	}, nil
}

// tokenTimeout bounds one token request (it outlives no sync, but a token
// endpoint that hangs must not hold the sync until its deadline).
const tokenTimeout = 30 * time.Second

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// parseURL accepts absolute http(s) URLs without credentials. Messages do not
// quote the URL: its query may hold an API key.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, connector.Configf("InvalidURL", "URL must be an absolute http or https URL")
	}
	if u.User != nil {
		return nil, connector.Configf("InvalidURL", "URL must not contain credentials: use basic auth from a Secret")
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// buildHeader assembles the headers of every request once.
func buildHeader(cfg Config) (http.Header, error) {
	h := http.Header{}
	for name, value := range cfg.Headers {
		if !validName(name) {
			return nil, connector.Configf("InvalidHeader", "header name %q is not a valid HTTP header name", name)
		}
		if !validValue(value) {
			return nil, connector.Configf("InvalidHeader", "header %q has a value with control characters", name)
		}
		if _, dup := h[http.CanonicalHeaderKey(name)]; dup { // the same name in another case: which wins?
			return nil, connector.Configf("InvalidHeader", "header %q is given twice", name)
		}
		h.Set(name, value)
	}
	if h.Get("Accept") == "" {
		h.Set("Accept", "application/json")
	}
	auth, err := authorization(cfg)
	if err != nil {
		return nil, err
	}
	if auth != "" || cfg.OAuth2 != nil {
		if h.Get("Authorization") != "" {
			return nil, connector.Configf("InvalidAuth", "an Authorization header cannot be combined with a bearer token, basic auth or OAuth2")
		}
		if auth != "" {
			h.Set("Authorization", auth)
		}
	}
	return h, nil
}

// authorization returns the Authorization header value for the configured
// credentials, or "". Messages never include them.
func authorization(cfg Config) (string, error) {
	switch {
	case cfg.BearerToken != "" && cfg.Username != "":
		return "", connector.Configf("InvalidAuth", "use either a bearer token or basic auth, not both")
	case cfg.OAuth2 != nil && (cfg.BearerToken != "" || cfg.Username != ""):
		return "", connector.Configf("InvalidAuth", "OAuth2 cannot be combined with a bearer token or basic auth")
	case cfg.BearerToken != "":
		if !validValue(cfg.BearerToken) {
			return "", connector.Configf("InvalidAuth", "the bearer token contains control characters")
		}
		return "Bearer " + cfg.BearerToken, nil
	case cfg.Username != "":
		if strings.Contains(cfg.Username, ":") {
			return "", connector.Configf("InvalidAuth", "a basic auth username cannot contain ':'")
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+cfg.Password)), nil
	}
	return "", nil
}

// validName reports whether s is an RFC 9110 token.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// validValue rejects control characters (CR and LF would split the header).
func validValue(s string) bool {
	for _, c := range []byte(s) {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// newTransport clones base (or the default transport) with a TLS config of its
// own: from base's, only the trusted roots, client certificates and minimum
// version carry over, so no setting of base can weaken verification. caPEM is
// added to the trusted roots.
func newTransport(base *http.Transport, caPEM []byte) (*http.Transport, error) {
	if base == nil {
		base = defaultTransport()
	}
	tr := base.Clone()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if b := base.TLSClientConfig; b != nil {
		cfg.RootCAs, cfg.Certificates = b.RootCAs, b.Certificates
		cfg.MinVersion = max(cfg.MinVersion, b.MinVersion)
	}
	if len(caPEM) > 0 {
		pool := rootPool(cfg.RootCAs)
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, connector.Configf("InvalidCA", "the CA bundle has no valid PEM certificate")
		}
		cfg.RootCAs = pool
	}
	tr.TLSClientConfig = cfg
	return tr, nil
}

// rootPool returns a copy of roots, or of the system pool when roots is nil.
func rootPool(roots *x509.CertPool) *x509.CertPool {
	if roots != nil {
		return roots.Clone()
	}
	if pool, err := x509.SystemCertPool(); err == nil {
		return pool
	}
	return x509.NewCertPool() // no system roots: the given CAs alone
}

// defaultTransport is http.DefaultTransport, unless something in the process
// replaced it with another RoundTripper (instrumentation does): then the same
// settings, rebuilt.
func defaultTransport() *http.Transport {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
}

var (
	errCrossHost        = errors.New("redirect to another host or to plain http refused")
	errTooManyRedirects = errors.New("stopped after 10 redirects")
)

// checkRedirect follows redirects on the same host only, since the request's
// headers (credentials from Secrets) are copied to the redirected request.
// Upgrading http to https is fine; the reverse is not.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errTooManyRedirects
	}
	if !sameOrigin(via[0].URL, req.URL) {
		return errCrossHost
	}
	return nil
}

// sameOrigin reports whether next may receive the credentials meant for orig.
func sameOrigin(orig, next *url.URL) bool {
	if !strings.EqualFold(next.Hostname(), orig.Hostname()) {
		return false
	}
	if next.Scheme == orig.Scheme {
		return port(next) == port(orig)
	}
	return orig.Scheme == "http" && next.Scheme == "https"
}

// port is u's port, the scheme's default if none is given.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// redact names a URL without its query, fragment or userinfo.
func redact(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}
