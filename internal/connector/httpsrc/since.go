package httpsrc

import (
	"encoding/json"
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
	v, err := formatTime(s.Format, s.Time)
	if err != nil {
		return "", err
	}
	if s.Template == "" {
		return v, nil
	}
	if !strings.Contains(s.Template, "{since}") {
		return "", connector.Configf("InvalidIncremental", "the incremental value template must contain {since}")
	}
	return strings.ReplaceAll(s.Template, "{since}", v), nil
}

// formatTime writes t in a watermark format.
func formatTime(format string, t time.Time) (string, error) {
	switch format {
	case "", FormatRFC3339:
		return t.UTC().Format(time.RFC3339), nil
	case FormatUnixSeconds:
		return strconv.FormatInt(t.Unix(), 10), nil
	case FormatUnixMillis:
		return strconv.FormatInt(t.UnixMilli(), 10), nil
	}
	return "", connector.Configf("InvalidIncremental", "unknown watermark format %q (want RFC3339, UnixSeconds or UnixMillis)", format)
}

// sinceJSON is t as the body's "{since}": a number in the Unix formats, a
// string in RFC 3339.
func sinceJSON(format string, t time.Time) (any, error) {
	v, err := formatTime(format, t)
	if err != nil || format == "" || format == FormatRFC3339 {
		return v, err
	}
	return json.Number(v), nil
}

// apply returns u with the watermark parameter set (replacing one the URL
// has), or u itself for a full load.
func (s *Since) apply(u *url.URL) (*url.URL, error) {
	if s == nil {
		return u, nil
	}
	if s.Param == "" {
		return u, nil // the watermark goes in the body (New checks that it can)
	}
	v, err := s.Value()
	if err != nil {
		return nil, err
	}
	return withParams(u, s.Param, v), nil
}
