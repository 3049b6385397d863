package httpsrc

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/usersuccess/persona-operator/internal/connector"
)

// Watermark formats of Since.
const (
	FormatRFC3339     = "RFC3339"
	FormatUnixSeconds = "UnixSeconds"
	FormatUnixMillis  = "UnixMillis"
)

// Since makes a sync incremental: the first page asks for the records
// changed since Time, in the query parameter Param.
type Since struct {
	Param string
	// Format is FormatRFC3339 ("" too), FormatUnixSeconds or FormatUnixMillis.
	Format string
	// Template, when set, is the parameter's value with "{since}" replaced by
	// the formatted time (a Salesforce SOQL query with a WHERE clause).
	Template string
	Time     time.Time
}

// Value is the parameter's value.
func (s *Since) Value() (string, error) {
	var v string
	switch s.Format {
	case "", FormatRFC3339:
		v = s.Time.UTC().Format(time.RFC3339)
	case FormatUnixSeconds:
		v = strconv.FormatInt(s.Time.Unix(), 10)
	case FormatUnixMillis:
		v = strconv.FormatInt(s.Time.UnixMilli(), 10)
	default:
		return "", connector.Configf("InvalidIncremental", "unknown watermark format %q (want RFC3339, UnixSeconds or UnixMillis)", s.Format)
	}
	if s.Template == "" {
		return v, nil
	}
	if !strings.Contains(s.Template, "{since}") {
		return "", connector.Configf("InvalidIncremental", "the incremental value template must contain {since}")
	}
	return strings.ReplaceAll(s.Template, "{since}", v), nil
}

// apply returns u with the watermark parameter set (replacing one the URL
// has), or u itself for a full load.
func (s *Since) apply(u *url.URL) (*url.URL, error) {
	if s == nil {
		return u, nil
	}
	if s.Param == "" {
		return nil, connector.Configf("InvalidIncremental", "an incremental sync needs the watermark's query parameter")
	}
	v, err := s.Value()
	if err != nil {
		return nil, err
	}
	return withParams(u, s.Param, v), nil
}
