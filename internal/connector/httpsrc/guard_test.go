package httpsrc

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/internal/connector/netguard"
)

func defaultPolicy(t *testing.T) netguard.Policy {
	t.Helper()
	p, err := netguard.NewPolicy(netguard.DefaultDeny)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDeniedDestination: under the manager's default policy a source on
// loopback, by address or by a name that resolves to it, is a config error
// with the policy as its reason, and the server never sees a request.
func TestDeniedDestination(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = w.Write([]byte(`[{"id":1}]`))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, url := range []string{srv.URL + "/users?token=" + secret, "http://localhost:" + port + "/users"} {
		_, err := fetch(t, Config{URL: url}, WithPolicy(defaultPolicy(t)))
		wantConfig(t, err, "DestinationDenied")
		if !strings.Contains(err.Error(), "destination address is in a denied range") {
			t.Errorf("%s: err = %v, want the denied range named", url, err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: err = %v quotes the query", url, err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the denied server got %d requests", n)
	}
	// The same server under an empty policy (what tests and the demo use).
	r, err := fetch(t, Config{URL: srv.URL}, WithPolicy(netguard.Policy{}))
	wantIDs(t, r, err, "1")
}

// TestGuardReplacesEveryDialHook: a base transport's own dialers (plain and
// TLS) cannot bypass the guard; every connection, redirects and pages
// included, is made by the guarded DialContext.
func TestGuardReplacesEveryDialHook(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`[{"id":1}]`))
	}))
	defer srv.Close()
	var bypassed atomic.Int32
	base := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			bypassed.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			bypassed.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	_, err := fetch(t, Config{URL: srv.URL}, WithTransport(base), WithPolicy(defaultPolicy(t)))
	wantConfig(t, err, "DestinationDenied")
	if n := bypassed.Load(); n != 0 {
		t.Errorf("the base transport's dialers ran %d times", n)
	}
}

// TestConnectErrorsSayNoMore: a closed port and a name that does not resolve
// read the same, without the system's "connection refused" or "no such host"
// (status messages must not scan ports or map DNS for a tenant).
func TestConnectErrorsSayNoMore(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	closed := srv.Listener.Addr().String()
	srv.Close()
	tests := []struct{ url, host string }{
		{"http://" + closed + "/x?token=" + secret, closed},
		{"http://no-such-host.invalid/x", "no-such-host.invalid"},
	}
	for _, tt := range tests {
		// Long enough for a resolver that times out (a DNSError too) to answer.
		_, err := fetch(t, Config{URL: tt.url, Timeout: 30 * time.Second})
		wantTransient(t, err)
		msg := err.Error()
		if !strings.HasSuffix(msg, ": could not connect to "+tt.host) {
			t.Errorf("err = %q, want it to end with %q", msg, "could not connect to "+tt.host)
		}
		for _, leak := range []string{"refused", "no such host", "dial", "lookup", secret} {
			if strings.Contains(msg, leak) {
				t.Errorf("err = %q says %q", msg, leak)
			}
		}
	}
}
