// Package postgres is the PostgreSQL connector: one SELECT, run in a read-only
// transaction and streamed row by row with pgx (rows are never collected first).
//
// Errors never carry the DSN, the password, or row values: they are built from the
// SQLSTATE and the server's message about the query, and errors whose message may
// quote a value are reduced to their code. The connector never logs.
package postgres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/netguard"
)

// Config is a resolved PostgreSQL DataSource.
type Config struct {
	// DSN comes from a Secret; it is never logged or returned in errors.
	DSN   string
	Query string
	// Changes, when set, asks only for the rows changed since a watermark.
	Changes *Changes
	// Settings are set for Select's transaction only (set_config), e.g. the
	// planner settings a generated query needs.
	Settings map[string]string
}

// Changes asks for the rows of the query whose watermark column is at or
// after Since, in watermark order.
type Changes struct {
	WatermarkColumn string
	Since           time.Time
	// GroupColumn, when set, asks instead for every row of each group (the
	// user id column of a Signal source) that has a changed row: a user's
	// list is replaced whole, so its unchanged rows must be read too.
	GroupColumn string
}

// query is the SQL to run, and its arguments. An incremental sync wraps the
// user's query rather than editing it: any SELECT works, and the column is
// quoted as an identifier, never spliced as text.
func (c Config) query() (string, []any) {
	if c.Changes == nil {
		return c.Query, nil
	}
	wm := pgx.Identifier{c.Changes.WatermarkColumn}.Sanitize()
	query := strings.TrimRight(strings.TrimSpace(c.Query), ";")
	if c.Changes.GroupColumn == "" {
		return fmt.Sprintf("SELECT * FROM (%s\n) q WHERE q.%s >= $1 ORDER BY q.%s", query, wm, wm), []any{c.Changes.Since}
	}
	// NOT MATERIALIZED: the query is read twice, and PostgreSQL would
	// otherwise materialize all of it; inlined, each read can use the
	// table's indexes (the watermark column's, the user id's).
	group := pgx.Identifier{c.Changes.GroupColumn}.Sanitize()
	return fmt.Sprintf("WITH q AS NOT MATERIALIZED (%s\n) SELECT * FROM q WHERE q.%s IN (SELECT c.%s FROM q c WHERE c.%s >= $1)",
		query, group, group, wm), []any{c.Changes.Since}
}

type source struct {
	cfg    Config
	policy netguard.Policy
}

// Option adjusts a source.
type Option func(*source)

// WithPolicy sets the addresses the source may not connect to (default: the
// manager's, netguard.Sources).
func WithPolicy(p netguard.Policy) Option { return func(s *source) { s.policy = p } }

// New returns a Source for one query.
func New(cfg Config, opts ...Option) connector.Source {
	s := &source{cfg: cfg, policy: netguard.Sources()}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// cleanupTimeout bounds the rollback and close after a sync: a stuck server
// must not hold the sync forever.
const cleanupTimeout = 5 * time.Second

// Fetch connects, runs the query read-only, and visits each row.
func (s *source) Fetch(ctx context.Context, visit connector.Visitor) error {
	pcfg, err := parseDSN(s.cfg.DSN, s.policy)
	if err != nil {
		return err
	}
	// Cancelling this context is how a stopped sync abandons the rest of the
	// result: rows.Close would otherwise read every unread row. pgx then closes
	// the connection and sends the server a cancel request for the query.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tx, end, err := begin(ctx, pcfg)
	if err != nil {
		return err
	}
	defer end()
	query, args := s.cfg.query()
	return stream(ctx, cancel, tx, query, args, visit)
}

// begin connects and starts a read-only transaction: a query that writes
// fails (25006) instead of changing the source. end rolls it back (nothing
// to commit) and closes the connection.
func begin(ctx context.Context, pcfg *pgx.ConnConfig) (tx pgx.Tx, end func(), err error) {
	conn, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		return nil, nil, classify(ctx, "connecting to the database", err)
	}
	tx, err = conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		cleanup(ctx, conn.Close)
		return nil, nil, classify(ctx, "starting a read-only transaction", err)
	}
	return tx, func() { cleanup(ctx, tx.Rollback); cleanup(ctx, conn.Close) }, nil
}

// cleanup runs f (a rollback or close) even when ctx is done, but not forever.
func cleanup(ctx context.Context, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = f(ctx)
}

// stream runs query and visits its rows as they arrive.
func stream(ctx context.Context, cancel context.CancelFunc, tx pgx.Tx, query string, args []any, visit connector.Visitor) error {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return classify(ctx, "running the query", err)
	}
	defer rows.Close()
	fields := columnNames(rows.FieldDescriptions())
	var num int64
	for rows.Next() {
		// pgx v5 allocates a fresh slice per call, so converting in place is safe
		// and callers may keep the values (TestTypes keeps rows and checks).
		values, err := rows.Values()
		if err != nil {
			return classify(ctx, "decoding a row", err)
		}
		num++
		for i, v := range values {
			values[i] = plain(v)
		}
		if err := visit(connector.Record{Num: num, Fields: fields, Values: values}, nil); err != nil {
			cancel() // before the deferred rows.Close, which would read every remaining row
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return classify(ctx, "reading rows", err)
	}
	return nil
}

func columnNames(fds []pgconn.FieldDescription) []string {
	names := make([]string, len(fds))
	for i, fd := range fds {
		names[i] = fd.Name
	}
	return names
}

// configStates are SQLSTATEs that retrying cannot fix, with their reasons.
// Other class 28 (authorization) and 42 (syntax, access rule) codes are
// matched by class in configReason.
var configStates = map[string]string{
	"28P01": "AuthenticationFailed", // invalid_password
	"28000": "AuthenticationFailed", // invalid_authorization_specification
	"3D000": "DatabaseNotFound",     // invalid_catalog_name
	"3F000": "InvalidQuery",         // invalid_schema_name
	"42601": "InvalidQuery",         // syntax_error
	"42P01": "InvalidQuery",         // undefined_table
	"42703": "InvalidQuery",         // undefined_column
	"42883": "InvalidQuery",         // undefined_function
	"42501": "PermissionDenied",     // insufficient_privilege
	"25006": "InvalidQuery",         // read_only_sql_transaction: the query writes
}

func configReason(code string) (string, bool) {
	if reason, ok := configStates[code]; ok {
		return reason, true
	}
	switch {
	case strings.HasPrefix(code, "28"):
		return "AuthenticationFailed", true
	case strings.HasPrefix(code, "42"):
		return "InvalidQuery", true
	}
	return "", false
}

// classify turns a pgx error into a sanitized ConfigError or transient error.
// It never uses err.Error(): pgx's connect errors embed connection parameters.
func classify(ctx context.Context, doing string, err error) error {
	// First: once ctx is done, whatever failed, failed because of it.
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: timed out or cancelled (spec.timeout)", doing)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg := describe(pgErr)
		if reason, ok := configReason(pgErr.Code); ok {
			return connector.Configf(reason, "%s: %s", doing, msg)
		}
		return fmt.Errorf("%s: %s", doing, msg)
	}
	switch {
	case netguard.IsDenied(err):
		return connector.Configf("DestinationDenied",
			"%s: the destination address is in a denied range (the manager's --deny-source-cidrs)", doing)
	case isTLSErr(err):
		return connector.Configf("TLSFailed", "%s: TLS negotiation failed (check sslmode and the server certificate)", doing)
	case isNetErr(err):
		return fmt.Errorf("%s: the server is unreachable", doing)
	}
	// Unknown: keep only the types of the underlying errors.
	return fmt.Errorf("%s failed (%s)", doing, leafTypes(err))
}

// leaves returns the errors at the bottom of err's tree (pgx joins the errors
// of its connection attempts).
func leaves(err error) []error {
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if next := u.Unwrap(); next != nil {
			return leaves(next)
		}
	case interface{ Unwrap() []error }:
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

func leafTypes(err error) string {
	errs := leaves(err)
	types := make([]string, 0, len(errs))
	for _, e := range errs {
		types = append(types, fmt.Sprintf("%T", e))
	}
	return strings.Join(types, ", ")
}

// isTLSErr reports TLS failures retrying cannot fix: sslmode=require against a
// server without TLS, or a certificate that does not verify.
func isTLSErr(err error) bool {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) {
		return true
	}
	for _, e := range leaves(err) {
		if e.Error() == "server refused TLS connection" { // pgconn has no exported error for it
			return true
		}
	}
	return false
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// describe renders a server error without values. Data exceptions (class 22),
// integrity violations (23) and raised exceptions (P0) can quote row data, so
// only their code is kept; other messages describe the query or the connection.
// Detail and Hint are never used: they may carry values.
func describe(e *pgconn.PgError) string {
	switch class := e.Code[:min(2, len(e.Code))]; class {
	case "22", "23", "P0":
		return fmt.Sprintf("the server rejected a value (SQLSTATE %s)", e.Code)
	}
	msg := fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
	if e.Position > 0 {
		msg += fmt.Sprintf(" at character %d of the query", e.Position)
	}
	return msg
}
