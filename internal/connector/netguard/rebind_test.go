package netguard

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// rebindingDNS answers A queries with first, then second for ever after,
// and AAAA queries with nothing: a DNS server doing DNS rebinding. It speaks
// DNS over a stream (the Go resolver's framing for a non-packet conn).
type rebindingDNS struct {
	first, second [4]byte
	answered      atomic.Int32
}

func (d *rebindingDNS) dial(context.Context, string, string) (net.Conn, error) {
	client, server := net.Pipe()
	go d.serve(server)
	return client, nil
}

func (d *rebindingDNS) serve(c net.Conn) {
	defer c.Close()
	for {
		var n [2]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		resp := d.answer(q)
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// answer builds the response to query q (one question).
func (d *rebindingDNS) answer(q []byte) []byte {
	end := 12
	for end < len(q) && q[end] != 0 {
		end += int(q[end]) + 1
	}
	end += 5 // the root label, QTYPE, QCLASS
	qtype := binary.BigEndian.Uint16(q[end-4:])
	resp := append([]byte(nil), q[:2]...)                   // ID
	resp = append(resp, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0) // response, RD, RA; QDCOUNT 1
	resp = append(resp, q[12:end]...)
	if qtype != 1 { // not A: no answer
		return resp
	}
	ip := d.second
	if d.answered.Add(1) == 1 {
		ip = d.first
	}
	resp[7] = 1                                                 // ANCOUNT
	resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4) // name pointer, A, IN, TTL 0, RDLENGTH 4
	return append(resp, ip[:]...)
}

// TestDNSRebinding: a name that resolves to an allowed address for the first
// connection and a denied one for the next is refused the second time: the
// check is on each connection's resolved address, not on an earlier lookup.
func TestDNSRebinding(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	dns := &rebindingDNS{first: [4]byte{127, 0, 0, 1}, second: [4]byte{127, 0, 0, 2}}
	p := mustPolicy(t, "127.0.0.2/32")
	d := p.Dialer(&net.Dialer{Resolver: &net.Resolver{PreferGo: true, Dial: dns.dial}})
	addr := net.JoinHostPort("rebind.test.", port)

	c, err := d.DialContext(context.Background(), "tcp4", addr)
	if err != nil {
		t.Fatalf("first connection, to 127.0.0.1: %v", err)
	}
	c.Close()
	c, err = d.DialContext(context.Background(), "tcp4", addr)
	if err == nil {
		c.Close()
		t.Fatal("the second connection, after the name rebound to a denied address, was made")
	}
	if !IsDenied(err) {
		t.Fatalf("second connection: %v, want ErrDenied", err)
	}
	if n := dns.answered.Load(); n != 2 {
		t.Errorf("%d A lookups, want one per connection", n)
	}
}
