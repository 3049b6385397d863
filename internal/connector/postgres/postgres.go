// Package postgres is the PostgreSQL connector: one SELECT, run in a read-only
// transaction and streamed row by row with pgx (rows are never collected first).
//
// Errors never carry the DSN, the password, or row values: they are built from the
// SQLSTATE and the server's message about the query, and data exceptions (which
// may quote a value) are reduced to their code.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersuccess/persona-operator/internal/connector"
)

// Config is a resolved PostgreSQL DataSource.
type Config struct {
	// DSN comes from a Secret; it is never logged or returned in errors.
	DSN   string
	Query string
}

type source struct{ cfg Config }

// New returns a Source for one query.
func New(cfg Config) connector.Source { return &source{cfg: cfg} }

// Fetch connects, runs the query read-only, and visits each row.
func (s *source) Fetch(ctx context.Context, visit connector.Visitor) error {
	pcfg, err := pgx.ParseConfig(s.cfg.DSN)
	if err != nil {
		return connector.Configf("InvalidDSN", "the DSN in the Secret is not a valid PostgreSQL connection string")
	}
	conn, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		return classify(ctx, "connecting to the database", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()

	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return classify(ctx, "starting a read-only transaction", err)
	}
	// Read-only: nothing to commit; rolling back also ends the snapshot.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	rows, err := tx.Query(ctx, s.cfg.Query)
	if err != nil {
		return classify(ctx, "running the query", err)
	}
	defer rows.Close()
	fields := columnNames(rows.FieldDescriptions())
	var num int64
	for rows.Next() {
		raw, err := rows.Values()
		if err != nil {
			return classify(ctx, "decoding a row", err)
		}
		num++
		values := make([]any, len(raw))
		for i, v := range raw {
			values[i] = plain(v)
		}
		if err := visit(connector.Record{Num: num, Fields: fields, Values: values}, nil); err != nil {
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
var configStates = map[string]string{
	"28P01": "AuthenticationFailed", // invalid_password
	"28000": "AuthenticationFailed", // invalid_authorization_specification
	"3D000": "DatabaseNotFound",
	"42601": "InvalidQuery", // syntax_error
	"42P01": "InvalidQuery", // undefined_table
	"42703": "InvalidQuery", // undefined_column
	"42883": "InvalidQuery", // undefined_function
	"42804": "InvalidQuery", // datatype_mismatch
	"42501": "PermissionDenied",
	"25006": "InvalidQuery", // read_only_sql_transaction: the query writes
}

// classify turns a pgx error into a sanitized ConfigError or transient error.
func classify(ctx context.Context, doing string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg := describe(pgErr)
		if reason, ok := configStates[pgErr.Code]; ok {
			return connector.Configf(reason, "%s: %s", doing, msg)
		}
		if strings.HasPrefix(pgErr.Code, "42") {
			return connector.Configf("InvalidQuery", "%s: %s", doing, msg)
		}
		return fmt.Errorf("%s: %s", doing, msg)
	}
	switch {
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: timed out or cancelled (spec.timeout)", doing)
	case isNetErr(err):
		return fmt.Errorf("%s: the server is unreachable", doing)
	}
	// pgx's own messages may embed connection parameters: keep only the type.
	return fmt.Errorf("%s failed (%T)", doing, errors.Unwrap(err))
}

func isNetErr(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || strings.Contains(err.Error(), "connection refused")
}

// describe renders a server error without values: data exceptions (class 22)
// and integrity violations (class 23) can quote row data, so only their code
// is kept; the others describe the query or the connection.
func describe(e *pgconn.PgError) string {
	if strings.HasPrefix(e.Code, "22") || strings.HasPrefix(e.Code, "23") {
		return fmt.Sprintf("data exception (SQLSTATE %s)", e.Code)
	}
	msg := fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
	if e.Position > 0 {
		msg += fmt.Sprintf(" at character %d of the query", e.Position)
	}
	return msg
}
