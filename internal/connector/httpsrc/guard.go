package httpsrc

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/netguard"
)

// WithPolicy sets the addresses the source may not connect to (default: the
// manager's, netguard.Sources).
func WithPolicy(p netguard.Policy) Option {
	return func(o *options) { o.policy = &p }
}

// guard makes every connection of tr (each page and redirect, new or after an
// idle one closed) go through a dialer that checks the resolved address
// against p. A TLS dialer of the base transport is dropped: TLS then runs over
// the guarded connection, with the transport's own TLS config.
func guard(tr *http.Transport, p netguard.Policy) {
	d := p.Dialer(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second})
	tr.DialContext = d.DialContext
	tr.Dial, tr.DialTLS, tr.DialTLSContext = nil, nil, nil //nolint:staticcheck // the deprecated hooks too: any of them would bypass the guard
}

// connectError says why a request reached no server, or returns nil. A denied
// address is the platform's policy, not a fault to retry. Whether the
// connection was refused, timed out or found no route is not said: those
// differences turn status messages into a port scanner of the manager's
// network, so all read "could not connect". A name that does not resolve
// reads the same, or they would map the cluster's DNS.
func connectError(where string, ue *url.Error, err error) error {
	if netguard.IsDenied(err) {
		return connector.Configf("DestinationDenied",
			"%s: the destination address is in a denied range (the manager's --deny-source-cidrs)", where)
	}
	var op *net.OpError
	var dns *net.DNSError
	if errors.As(err, &dns) || errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return fmt.Errorf("%s: could not connect to %s", where, hostOf(ue))
	}
	return nil
}

// hostOf is the host:port a failed request was for (after redirects).
func hostOf(ue *url.Error) string {
	if ue != nil {
		if u, err := url.Parse(ue.URL); err == nil && u.Host != "" {
			return u.Host
		}
	}
	return "the server"
}
