package postgres

import (
	"errors"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/netguard"
)

// AllowedDSNKeys are the connection string keys a DataSource's DSN may use.
// The list is closed on purpose (pgx rejects any other key before touching
// the file system): the DSN is tenant input, and several libpq keys make the
// manager read its own files: sslrootcert, sslcert and sslkey (the manager
// would present, for example, its webhook serving key as a client
// certificate), sslpassword (goes with sslkey), passfile, service and
// servicefile (an INI file whose entries override host and sslmode). Kerberos
// keys (krbsrvname, krbspn) would use the manager's credentials. Other keys
// pgx would pass through as server settings are not needed: the server
// settings a query needs go in `options` (options=-c search_path=app).
var AllowedDSNKeys = []string{
	"host", "port", "dbname", "user", "password",
	"sslmode", "ssl", "sslnegotiation", "sslsni", "channel_binding", "require_auth",
	"connect_timeout", "target_session_attrs", "min_protocol_version", "max_protocol_version",
	"application_name", "options",
}

// parseDSN parses a tenant's DSN with the allowed keys only, and makes every
// connection of the resulting config (fallback hosts and the cancel request
// included) go through p. Errors are ConfigErrors that never quote the DSN.
func parseDSN(dsn string, p netguard.Policy) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfigWithOptions(dsn, pgx.ParseConfigOptions{
		ParseConfigOptions: pgconn.ParseConfigOptions{ConnStringAllowedKeys: AllowedDSNKeys},
	})
	if err != nil {
		if key, ok := refusedKey(err); ok {
			return nil, connector.Configf("InvalidDSN",
				"the DSN in the Secret uses the option %q, which the operator does not accept (accepted: %s)",
				key, strings.Join(AllowedDSNKeys, ", "))
		}
		// pgx's parse errors quote the DSN: say nothing more specific.
		return nil, connector.Configf("InvalidDSN", "the DSN in the Secret is not a valid PostgreSQL connection string")
	}
	// pgx's own dialer, with its connect_timeout, behind the guard.
	cfg.DialFunc = p.Dialer(&net.Dialer{KeepAlive: 5 * time.Minute, Timeout: cfg.ConnectTimeout}).DialContext
	return cfg, nil
}

// refusedKeyText is how pgx names a key outside ConnStringAllowedKeys, at the
// end of its message (after the redacted DSN, which is not used).
var refusedKeyText = regexp.MustCompile(`connection string key "([a-z_]{1,64})" is not in ConnStringAllowedKeys$`)

// refusedKey returns the key pgx refused, when that is the error; only a key
// made of the characters of libpq keys is returned, never other DSN text.
func refusedKey(err error) (string, bool) {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return "", false
	}
	m := refusedKeyText.FindStringSubmatch(pe.Error())
	if m == nil {
		return "", false
	}
	return m[1], true
}
