// Package httpsrc is the connector for JSON HTTP APIs: it GETs a URL (or POSTs
// a JSON body template to a search endpoint), reads the records at a path of
// the JSON response and follows next links or cursors.
//
// Security: TLS verification is always on (extra CAs may be added, never
// skipped). Credentials and custom headers go only to the configured scheme and
// host: a redirect or next link elsewhere is refused. Error messages name the
// URL as scheme://host/path only (no query, no userinfo) and never carry
// header values, tokens, passwords or response bodies.
package httpsrc
