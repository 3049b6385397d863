package postgres

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/netguard"
)

func fetchErr(t *testing.T, dsn string, opts ...Option) error {
	t.Helper()
	return New(Config{DSN: dsn, Query: "SELECT 1 AS one"}, opts...).
		Fetch(context.Background(), func(connector.Record, *connector.RecordError) error { return nil })
}

// TestDSNFileOptionsRefused: a DSN may not make the manager read its own
// files. The passfile case proves the harm: the file holds the password of
// the real server, and without the check the sync connects with it.
func TestDSNFileOptionsRefused(t *testing.T) {
	dir := t.TempDir()
	passfile := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(passfile, []byte(fmt.Sprintf("*:*:*:reader:%s\n", readerPassword)), 0o600); err != nil {
		t.Fatal(err)
	}
	keyword := fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=reader sslmode=disable", srv.Port())
	url := srv.DSN("reader", "", "postgres") // sslmode=disable in its query
	tests := []struct{ name, dsn, key string }{
		{"passfile (keyword form)", keyword + " passfile=" + passfile, "passfile"},
		{"passfile (URL form)", url + "&passfile=" + passfile, "passfile"},
		{"sslrootcert", keyword + " password=x sslrootcert=" + passfile, "sslrootcert"},
		{"sslcert", keyword + " password=x sslcert=" + passfile, "sslcert"},
		{"sslkey", url + "&sslkey=" + passfile, "sslkey"},
		{"sslpassword", keyword + " sslpassword=x", "sslpassword"},
		{"service", keyword + " service=db", "service"},
		{"servicefile", keyword + " servicefile=" + passfile, "servicefile"},
		{"kerberos", keyword + " krbsrvname=postgres", "krbsrvname"},
		{"a server setting outside options", keyword + " password=x search_path=app", "search_path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fetchErr(t, tt.dsn)
			if connector.ConfigReason(err) != "InvalidDSN" {
				t.Fatalf("err = %v, want InvalidDSN", err)
			}
			if want := fmt.Sprintf("uses the option %q", tt.key); !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want it to say %s", err, want)
			}
			for _, leak := range []string{passfile, readerPassword, "127.0.0.1", "reader"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("err = %v quotes %q", err, leak)
				}
			}
		})
	}
}

// TestDSNAcceptedOptions: the allowed keys still work, server settings
// through options included.
func TestDSNAcceptedOptions(t *testing.T) {
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=reader password=%s sslmode=disable connect_timeout=10 "+
		"application_name=persona target_session_attrs=any options='-c search_path=public'", srv.Port(), readerPassword)
	var got []any
	err := New(Config{DSN: dsn, Query: "SELECT current_setting('search_path') AS sp, current_setting('application_name') AS app"}).
		Fetch(context.Background(), func(r connector.Record, _ *connector.RecordError) error {
			got = r.Values
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[public persona]" {
		t.Errorf("settings = %v, want [public persona]", got)
	}
	if err := fetchErr(t, readerDSN()+"&application_name=x"); err != nil {
		t.Errorf("URL form with application_name: %v", err)
	}
}

// TestDeniedDatabaseAddress: under the manager's default policy the server on
// loopback is refused before connecting, by address, by name and as a Unix
// socket path, with the policy as the reason.
func TestDeniedDatabaseAddress(t *testing.T) {
	def, err := netguard.NewPolicy(netguard.DefaultDeny)
	if err != nil {
		t.Fatal(err)
	}
	for _, dsn := range []string{
		readerDSN(),
		strings.Replace(readerDSN(), "127.0.0.1", "localhost", 1),
		"host=" + t.TempDir() + " user=reader password=x dbname=postgres",
	} {
		err := fetchErr(t, dsn, WithPolicy(def))
		if connector.ConfigReason(err) != "DestinationDenied" || !strings.Contains(err.Error(), "destination address is in a denied range") {
			t.Errorf("err = %v, want DestinationDenied", err)
		}
		if strings.Contains(err.Error(), readerPassword) || strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("err = %v leaks the DSN", err)
		}
	}
	if err := fetchErr(t, readerDSN(), WithPolicy(netguard.Policy{})); err != nil {
		t.Errorf("empty policy: %v", err)
	}
}
