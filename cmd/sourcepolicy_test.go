package main

import (
	"flag"
	"net/netip"
	"testing"

	"github.com/usersuccess/persona-operator/internal/connector/netguard"
)

func TestSourcePolicyFlags(t *testing.T) {
	defer netguard.SetSources(netguard.Sources())
	tests := []struct {
		args    []string
		denied  []string
		allowed []string
		bad     bool
	}{
		{args: nil, denied: []string{"127.0.0.1", "169.254.169.254", "::1", "fe80::1"}, allowed: []string{"10.96.0.1"}},
		{args: []string{"--service-cidr=10.96.0.0/12"}, denied: []string{"127.0.0.1", "10.96.0.1"}, allowed: []string{"10.112.0.1"}},
		{args: []string{"--deny-source-cidrs="}, allowed: []string{"127.0.0.1", "169.254.169.254"}},
		{args: []string{"--deny-source-cidrs=", "--service-cidr=10.96.0.0/12,fd00:10:96::/112"},
			denied: []string{"10.96.0.1", "fd00:10:96::1"}, allowed: []string{"127.0.0.1"}},
		{args: []string{"--service-cidr=10.96.0.0"}, denied: []string{"10.96.0.0"}, allowed: []string{"10.96.0.1"}},
		{args: []string{"--service-cidr=not-a-cidr"}, bad: true},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("manager", flag.ContinueOnError)
		apply := sourcePolicyFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		_, err := apply()
		if (err != nil) != tt.bad {
			t.Fatalf("%v: err = %v", tt.args, err)
		}
		if tt.bad {
			continue
		}
		p := netguard.Sources()
		for _, ip := range tt.denied {
			if p.Allows(netip.MustParseAddr(ip)) {
				t.Errorf("%v: %s allowed", tt.args, ip)
			}
		}
		for _, ip := range tt.allowed {
			if !p.Allows(netip.MustParseAddr(ip)) {
				t.Errorf("%v: %s denied", tt.args, ip)
			}
		}
	}
}
