package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestSelectStreamsRowsReadOnly(t *testing.T) {
	var ids []string
	err := Select(context.Background(), Config{DSN: readerDSN(), Query: "SELECT g::text FROM generate_series(1, $1::int) g"}, []any{5}, time.Minute,
		func(rows pgx.Rows) error {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
			return nil
		})
	if err != nil || strings.Join(ids, ",") != "1,2,3,4,5" {
		t.Fatalf("Select = %v, %v", ids, err)
	}
	if err := Select(context.Background(), Config{DSN: readerDSN(), Query: "CREATE TABLE nope (x int)"}, nil, time.Minute,
		func(pgx.Rows) error { return nil }); err == nil || !strings.Contains(err.Error(), "25006") {
		t.Fatalf("a write: %v, want the read-only error", err)
	}
}

func TestSelectStatementTimeout(t *testing.T) {
	start := time.Now()
	err := Select(context.Background(), Config{DSN: readerDSN(), Query: "SELECT pg_sleep(5)"}, nil, 200*time.Millisecond,
		func(pgx.Rows) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "57014") || time.Since(start) > 4*time.Second {
		t.Fatalf("Select = %v after %s, want the statement timeout (SQLSTATE 57014)", err, time.Since(start))
	}
}

func TestSelectReturnsTheVisitsError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Select(context.Background(), Config{DSN: readerDSN(), Query: "SELECT g FROM generate_series(1, 1000000) g"}, nil, time.Minute,
		func(pgx.Rows) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Select = %v after %d rows, want the visit's error after one", err, n)
	}
}

func TestSelectAppliesSettingsToItsTransaction(t *testing.T) {
	var got string
	err := Select(context.Background(), Config{DSN: readerDSN(), Query: "SELECT current_setting('enable_nestloop')",
		Settings: map[string]string{"enable_nestloop": "off"}}, nil, time.Minute,
		func(rows pgx.Rows) error { return rows.Scan(&got) })
	if err != nil || got != "off" {
		t.Fatalf("enable_nestloop = %q, %v; want off", got, err)
	}
}
