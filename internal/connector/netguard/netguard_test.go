package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

func mustPolicy(t testing.TB, cidrs ...string) Policy {
	t.Helper()
	p, err := NewPolicy(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAllows(t *testing.T) {
	def := mustPolicy(t, DefaultDeny...)
	svc := mustPolicy(t, append(append([]string(nil), DefaultDeny...), "10.96.0.0/12", "fd00:10:96::/112")...)
	tests := []struct {
		name   string
		policy Policy
		ip     string
		want   bool
	}{
		{"metadata endpoint", def, "169.254.169.254", false},
		{"link-local v6", def, "fe80::1", false},
		{"link-local v6 with a zone", def, "fe80::1%eth0", false},
		{"EC2 metadata over IPv6", def, "fd00:ec2::254", false},
		{"loopback", def, "127.0.0.1", false},
		{"loopback, anywhere in 127/8", def, "127.1.2.3", false},
		{"loopback v6", def, "::1", false},
		{"loopback written as IPv4-mapped IPv6", def, "::ffff:127.0.0.1", false},
		{"metadata written as IPv4-mapped IPv6", def, "::ffff:169.254.169.254", false},
		{"unspecified v4 (Linux connects it to the host)", def, "0.0.0.0", false},
		{"unspecified v6", def, "::", false},
		{"a public address", def, "93.184.216.34", true},
		{"a private address, not in the default", def, "10.0.0.7", true},
		{"a public v6 address", def, "2606:2800:220:1:248:1893:25c8:1946", true},
		{"next to loopback", def, "128.0.0.1", true},
		{"next to link-local", def, "169.255.0.1", true},
		{"service CIDR when given", svc, "10.100.0.10", false},
		{"service CIDR v6 when given", svc, "fd00:10:96::a", false},
		{"outside the service CIDR", svc, "10.112.0.1", true},
		{"empty policy allows loopback", Policy{}, "127.0.0.1", true},
		{"empty policy allows metadata", Policy{}, "169.254.169.254", true},
		{"a single address", mustPolicy(t, "10.0.0.1"), "10.0.0.1", false},
		{"next to a single address", mustPolicy(t, "10.0.0.1"), "10.0.0.2", true},
		{"a mapped CIDR denies the IPv4 range", mustPolicy(t, "::ffff:10.0.0.0/104"), "10.1.2.3", false},
		{"an unmasked CIDR", mustPolicy(t, "10.1.2.3/8"), "10.200.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.Allows(netip.MustParseAddr(tt.ip)); got != tt.want {
				t.Errorf("Allows(%s) under %q = %v, want %v", tt.ip, tt.policy, got, tt.want)
			}
		})
	}
	if (Policy{}).Allows(netip.Addr{}) {
		t.Error("the invalid address is allowed")
	}
}

func TestNewPolicy(t *testing.T) {
	p, err := ParseList(" 10.96.0.0/12, ,fd00::/8,192.168.1.1 ")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.String(), "10.96.0.0/12,fd00::/8,192.168.1.1/32"; got != want {
		t.Errorf("policy %q, want %q", got, want)
	}
	if p, _ := ParseList(""); !p.Empty() {
		t.Errorf("an empty list gives %q", p)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0", "fe80::1%eth0", "::1/129"} {
		if _, err := NewPolicy([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("NewPolicy(%q) = %v, want an error naming it", bad, err)
		}
	}
}

func TestControl(t *testing.T) {
	def := mustPolicy(t, DefaultDeny...)
	tests := []struct {
		policy           Policy
		network, address string
		denied           bool
	}{
		{def, "tcp", "127.0.0.1:80", true},
		{def, "tcp6", "[::1]:5432", true},
		{def, "tcp4", "169.254.169.254:80", true},
		{def, "tcp", "93.184.216.34:443", false},
		{def, "tcp", "not-an-address", true},
		{def, "unix", "/var/run/postgresql/.s.PGSQL.5432", true},
		{Policy{}, "unix", "/var/run/postgresql/.s.PGSQL.5432", false},
		{Policy{}, "tcp", "127.0.0.1:80", false},
	}
	for _, tt := range tests {
		err := tt.policy.Control(context.Background(), tt.network, tt.address, nil)
		if denied := errors.Is(err, ErrDenied); denied != tt.denied {
			t.Errorf("Control(%s %s) under %q = %v, want denied %v", tt.network, tt.address, tt.policy, err, tt.denied)
		}
	}
}

// TestDialerChecksTheResolvedAddress dials real loopback servers: by IP, and
// by a name that resolves to loopback, so the check is on the address
// connected to and not on the text of the URL.
func TestDialerChecksTheResolvedAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	deny := mustPolicy(t, DefaultDeny...)
	for _, addr := range []string{srv.Listener.Addr().String(), net.JoinHostPort("localhost", port)} {
		c, err := deny.Dialer(nil).DialContext(context.Background(), "tcp", addr)
		if err == nil {
			c.Close()
			t.Fatalf("dialed %s through the default policy", addr)
		}
		if !IsDenied(err) {
			t.Errorf("dial %s: %v, want ErrDenied", addr, err)
		}
	}
	c, err := mustPolicy(t, "10.0.0.0/8").Dialer(nil).DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("a policy without loopback refused loopback: %v", err)
	}
	c.Close()
}

func TestDialerKeepsBaseSettingsAndControl(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	called := 0
	base := &net.Dialer{Control: func(string, string, syscall.RawConn) error { called++; return nil }}
	d := Policy{}.Dialer(base)
	c, err := d.DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if called != 1 {
		t.Errorf("base Control ran %d times, want 1", called)
	}
	if base.ControlContext != nil {
		t.Error("Dialer modified its base")
	}
}

func TestSourcesDefaultsToDefaultDeny(t *testing.T) {
	if got, want := Sources().String(), mustPolicy(t, DefaultDeny...).String(); got != want {
		t.Fatalf("Sources() = %q before SetSources, want the default %q", got, want)
	}
	defer SetSources(Sources())
	SetSources(Policy{})
	if !Sources().Empty() {
		t.Error("SetSources did not take")
	}
}

// FuzzAllows checks Allows against net.IPNet's containment, and that an IPv4
// address and its IPv4-mapped IPv6 form always get the same answer.
func FuzzAllows(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1})
	f.Add([]byte{169, 254, 169, 254})
	f.Add([]byte(net.ParseIP("::ffff:127.0.0.1").To16()))
	f.Add([]byte(net.ParseIP("fe80::1").To16()))
	f.Add([]byte{8, 8, 8, 8})
	p := mustPolicy(f, append(append([]string(nil), DefaultDeny...), "10.96.0.0/12", "fd00:10:96::/112")...)
	var nets []*net.IPNet
	for _, s := range p.deny {
		_, n, err := net.ParseCIDR(s.String())
		if err != nil {
			f.Fatal(err)
		}
		nets = append(nets, n)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		want := true
		for _, n := range nets {
			if n.Contains(net.IP(b)) {
				want = false
			}
		}
		if got := p.Allows(ip); got != want {
			t.Fatalf("Allows(%s) = %v, net.IPNet says %v", ip, got, want)
		}
		if ip.Is4() && p.Allows(netip.AddrFrom16(ip.As16())) != want {
			t.Fatalf("%s and its IPv4-mapped form disagree", ip)
		}
	})
}
