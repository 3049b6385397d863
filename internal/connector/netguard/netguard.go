// Package netguard decides which addresses the manager may connect to on a
// tenant's behalf, and enforces it where connections are made: a DataSource's
// URL or DSN is tenant input, and without a guard the manager would fetch from
// the cloud metadata endpoint (169.254.169.254), its own loopback ports or the
// cluster's Services, and report what it found in status.
//
// The check runs in net.Dialer's Control hook, on the address the socket is
// about to connect to: after name resolution, for every connection (each
// redirect, page and fallback host included), so a name that resolves to an
// allowed address once and a denied one later (DNS rebinding) is still refused.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
)

// DefaultDeny is the manager's default: loopback, link-local (where cloud
// metadata endpoints live: 169.254.169.254), AWS's IPv6 metadata address, and
// the unspecified addresses, which Linux connects to the local host.
var DefaultDeny = []string{
	"127.0.0.0/8", "::1/128", // loopback
	"169.254.0.0/16", "fe80::/10", // link-local
	"fd00:ec2::254/128",   // the EC2 instance metadata service over IPv6
	"0.0.0.0/8", "::/128", // "this host"
}

// Policy is a set of denied address ranges. The zero Policy allows everything.
type Policy struct {
	deny []netip.Prefix
}

// NewPolicy parses CIDRs ("10.96.0.0/12") or single addresses ("10.0.0.1").
func NewPolicy(cidrs []string) (Policy, error) {
	var p Policy
	for _, s := range cidrs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		prefix, err := parsePrefix(s)
		if err != nil {
			return Policy{}, fmt.Errorf("%q is not a CIDR or an IP address", s)
		}
		p.deny = append(p.deny, prefix)
	}
	return p, nil
}

// ParseList is NewPolicy over a comma-separated list (a flag's value).
func ParseList(list string) (Policy, error) { return NewPolicy(strings.Split(list, ",")) }

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, errors.New("bad address")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	prefix, err := netip.ParsePrefix(s)
	if err != nil {
		return prefix, err
	}
	if prefix.Addr().Is4In6() && prefix.Bits() >= 96 { // ::ffff:10.0.0.0/104 is 10.0.0.0/8
		prefix = netip.PrefixFrom(prefix.Addr().Unmap(), prefix.Bits()-96)
	}
	return prefix.Masked(), nil
}

// Empty reports whether p denies nothing.
func (p Policy) Empty() bool { return len(p.deny) == 0 }

// String lists the denied ranges.
func (p Policy) String() string {
	s := make([]string, len(p.deny))
	for i, d := range p.deny {
		s[i] = d.String()
	}
	return strings.Join(s, ",")
}

// Allows reports whether p lets the manager connect to ip. An IPv4 address
// written as IPv6 (::ffff:127.0.0.1) is judged as the IPv4 address it is, and
// an IPv6 zone does not change the answer. An invalid address is not allowed.
func (p Policy) Allows(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, d := range p.deny {
		if d.Contains(ip) {
			return false
		}
	}
	return true
}

// ErrDenied is the error of a refused connection. Its text is all a status
// message says: which of the ranges matched, or whether anything listens
// there, is not the tenant's to learn.
var ErrDenied = errors.New("destination address is in a denied range")

// IsDenied reports whether err is (or wraps) a connection p refused.
func IsDenied(err error) bool { return errors.Is(err, ErrDenied) }

// Control is a net.Dialer ControlContext: it runs after resolution, before
// connect, with the literal address. Networks other than IP (a Unix socket a
// PostgreSQL DSN can name as host=/path) are local by nature: refused unless
// p is empty.
func (p Policy) Control(_ context.Context, network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !p.Allows(ap.Addr()) {
			return ErrDenied
		}
		return nil
	}
	if p.Empty() {
		return nil
	}
	return ErrDenied
}

// Dialer returns a copy of base (nil: a zero Dialer) that checks every
// connection against p. base's own Control hooks run after p's check.
func (p Policy) Dialer(base *net.Dialer) *net.Dialer {
	d := &net.Dialer{}
	if base != nil {
		*d = *base
	}
	inner, innerCtx := d.Control, d.ControlContext
	d.Control = nil
	d.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if err := p.Control(ctx, network, address, c); err != nil {
			return err
		}
		switch {
		case innerCtx != nil:
			return innerCtx(ctx, network, address, c)
		case inner != nil:
			return inner(network, address, c)
		}
		return nil
	}
	return d
}

// sources is the policy for DataSource connections, set once by the manager
// from its flags (--deny-source-cidrs, --service-cidr). Until then it is
// DefaultDeny: a connector built without the manager's wiring is guarded too.
var sources atomic.Pointer[Policy]

func init() {
	p, err := NewPolicy(DefaultDeny)
	if err != nil {
		panic(err)
	}
	sources.Store(&p)
}

// SetSources sets the policy of DataSource connections. The manager calls it
// at start; test harnesses whose sources serve from loopback set an empty one.
func SetSources(p Policy) { sources.Store(&p) }

// Sources is the policy of DataSource connections.
func Sources() Policy { return *sources.Load() }
