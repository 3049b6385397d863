package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/usersuccess/persona-operator/internal/connector/netguard"
)

// sourcePolicyFlags registers the flags of the addresses DataSources may not
// connect to; the returned function, called after flag.Parse, installs the
// policy for every connector (netguard.SetSources).
func sourcePolicyFlags(fs *flag.FlagSet) func() (netguard.Policy, error) {
	var deny, service string
	fs.StringVar(&deny, "deny-source-cidrs", strings.Join(netguard.DefaultDeny, ","),
		"Comma-separated CIDRs DataSources (HTTP and PostgreSQL) may not connect to, checked on the resolved address of "+
			"every connection. Default: loopback, link-local (cloud metadata endpoints) and the unspecified addresses. "+
			"Empty allows every address (a local demo whose sources serve from loopback).")
	fs.StringVar(&service, "service-cidr", "",
		"Comma-separated CIDRs of the cluster's Services (e.g. 10.96.0.0/12), denied to DataSources in addition to "+
			"--deny-source-cidrs: the API server and in-cluster Services are not a tenant's to read.")
	return func() (netguard.Policy, error) {
		p, err := netguard.ParseList(deny + "," + service)
		if err != nil {
			return p, fmt.Errorf("--deny-source-cidrs or --service-cidr: %w", err)
		}
		netguard.SetSources(p)
		return p, nil
	}
}
