package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/testutil/pgtest"
)

const readerPassword = "Reader-Passw0rd-123"

var srv *pgtest.Server

// One real server for the package.
func TestMain(m *testing.M) {
	var err error
	srv, err = pgtest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	for _, sql := range []string{
		fmt.Sprintf(`CREATE ROLE reader LOGIN PASSWORD '%s'`, readerPassword),
		`CREATE TABLE typed (id text, i2 smallint, i4 int, i8 bigint, f4 real, f8 double precision, num numeric,
			b boolean, ts timestamptz, d date, u uuid, j jsonb, arr text[], iv interval, by bytea)`,
		`INSERT INTO typed VALUES ('u1', 1, 2, 3, 1.5, 2.25, 12.5, true, '2026-11-20T10:00:00Z', '2027-01-15',
			'6f9619ff-8b86-d011-b42d-00c04fc964ff', '{"plan":"pro","seats":3}', ARRAY['sso','api'], '1 day 2 hours', '\x6869')`,
		`INSERT INTO typed (id) VALUES ('u2')`,
		`CREATE TABLE many AS SELECT g AS n, 'u' || g AS id FROM generate_series(1, 50000) g`,
		`GRANT SELECT ON typed, many TO reader`,
	} {
		if err := srv.Exec(ctx, sql); err != nil {
			fmt.Fprintln(os.Stderr, sql, err)
			_ = srv.Stop()
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = srv.Stop()
	os.Exit(code)
}

func collect(t *testing.T, cfg Config) ([]connector.Record, error) {
	t.Helper()
	var recs []connector.Record
	err := New(cfg).Fetch(context.Background(), func(r connector.Record, re *connector.RecordError) error {
		if re != nil {
			t.Fatalf("unexpected record error %v", re)
		}
		recs = append(recs, r)
		return nil
	})
	return recs, err
}

func TestTypes(t *testing.T) {
	recs, err := collect(t, Config{DSN: srv.DSN("reader", readerPassword, "postgres"), Query: "SELECT * FROM typed ORDER BY id"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Num != 1 || recs[1].Num != 2 {
		t.Fatalf("records = %+v", recs)
	}
	want := map[string]any{
		"id": "u1", "i2": int64(1), "i4": int64(2), "i8": int64(3), "f4": 1.5, "f8": 2.25, "num": 12.5, "b": true,
		"ts": time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), "d": time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC),
		"u": "6f9619ff-8b86-d011-b42d-00c04fc964ff", "j": map[string]any{"plan": "pro", "seats": float64(3)},
		"arr": []any{"sso", "api"}, "iv": 26 * time.Hour, "by": "hi",
	}
	for name, w := range want {
		got, ok := recs[0].Get(name)
		if ts, isTime := got.(time.Time); isTime {
			got = ts.UTC()
		}
		if !ok || !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %#v (%T), want %#v", name, got, got, w)
		}
	}
	for _, f := range recs[1].Fields {
		if v, _ := recs[1].Get(f); f != "id" && v != nil {
			t.Errorf("NULL %s = %#v, want nil", f, v)
		}
	}
}

func TestStreamsManyRowsInOrder(t *testing.T) {
	var n int64
	err := New(Config{DSN: srv.DSN("reader", readerPassword, "postgres"), Query: "SELECT n, id FROM many ORDER BY n"}).
		Fetch(context.Background(), func(r connector.Record, _ *connector.RecordError) error {
			n++
			if r.Num != n || r.Values[0] != n {
				return fmt.Errorf("record %d has Num %d and n %v", n, r.Num, r.Values[0])
			}
			return nil
		})
	if err != nil || n != 50000 {
		t.Fatalf("streamed %d rows, err %v", n, err)
	}
}

func TestErrors(t *testing.T) {
	dsn := srv.DSN("reader", readerPassword, "postgres")
	wrong := "Wrong-Passw0rd-xyz"
	tests := []struct {
		name       string
		cfg        Config
		ctx        func() (context.Context, context.CancelFunc)
		wantReason string // "" = transient
		wantIn     string
	}{
		{name: "wrong password", cfg: Config{DSN: srv.DSN("reader", wrong, "postgres"), Query: "SELECT 1"}, wantReason: "AuthenticationFailed"},
		{name: "unknown role", cfg: Config{DSN: srv.DSN("nobody", wrong, "postgres"), Query: "SELECT 1"}, wantReason: "AuthenticationFailed"},
		{name: "unknown database", cfg: Config{DSN: srv.DSN("reader", readerPassword, "nodb"), Query: "SELECT 1"}, wantReason: "DatabaseNotFound"},
		{name: "bad DSN", cfg: Config{DSN: "postgres://reader:" + wrong + "@127.0.0.1:notaport/x", Query: "SELECT 1"}, wantReason: "InvalidDSN"},
		{name: "syntax error", cfg: Config{DSN: dsn, Query: "SELEC id FROM typed"}, wantReason: "InvalidQuery", wantIn: "syntax error"},
		{name: "unknown table", cfg: Config{DSN: dsn, Query: "SELECT id FROM nope"}, wantReason: "InvalidQuery", wantIn: `relation "nope" does not exist`},
		{name: "unknown column", cfg: Config{DSN: dsn, Query: "SELECT nope FROM typed"}, wantReason: "InvalidQuery"},
		{name: "write in read-only transaction", cfg: Config{DSN: dsn, Query: "INSERT INTO typed (id) VALUES ('x') RETURNING id"}, wantReason: "InvalidQuery"},
		{name: "no privilege", cfg: Config{DSN: dsn, Query: "SELECT * FROM pg_authid"}, wantReason: "PermissionDenied"},
		{name: "value in a data exception is not reported", cfg: Config{DSN: dsn, Query: "SELECT id::int FROM typed"}, wantIn: "data exception (SQLSTATE 22P02)"},
		{name: "nothing listening", cfg: Config{DSN: "postgres://reader:" + wrong + "@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2", Query: "SELECT 1"}},
		{name: "timeout", cfg: Config{DSN: dsn, Query: "SELECT pg_sleep(5)"}, ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.Background(), func() {}
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			err := New(tt.cfg).Fetch(ctx, func(connector.Record, *connector.RecordError) error { return nil })
			if err == nil {
				t.Fatal("want an error")
			}
			if got := connector.ConfigReason(err); got != tt.wantReason {
				t.Fatalf("reason = %q, want %q (error: %v)", got, tt.wantReason, err)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("error %q does not contain %q", err, tt.wantIn)
			}
			for _, secret := range []string{wrong, readerPassword, "postgres://", "u1"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error leaks %q: %v", secret, err)
				}
			}
		})
	}
}

func TestVisitorErrorStopsTheSync(t *testing.T) {
	stop := errors.New("stop")
	var n int
	err := New(Config{DSN: srv.DSN("reader", readerPassword, "postgres"), Query: "SELECT n FROM many"}).
		Fetch(context.Background(), func(connector.Record, *connector.RecordError) error {
			n++
			if n == 10 {
				return stop
			}
			return nil
		})
	if !errors.Is(err, stop) || n != 10 {
		t.Fatalf("err = %v after %d rows, want the visitor's error after 10", err, n)
	}
}

// BenchmarkSync1M streams 1 M rows of 15 mixed columns from a real server:
//
//	go test ./internal/connector/postgres -run '^$' -bench Sync1M -benchtime 3x
func BenchmarkSync1M(b *testing.B) {
	ctx := context.Background()
	if err := srv.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench AS SELECT
		'u' || g AS id, 'acct-' || (g / 7) AS account_id, 'user' || g || '@example.com' AS email,
		(ARRAY['decision_maker','champion','end_user'])[1 + g % 3] AS role, g % 11 AS nps,
		now() - (g % 300) * interval '1 day' AS last_login, g % 60 AS logins_30d,
		ARRAY['reports','sso'] AS features, g % 13 = 0 AS beta, g % 4 <> 0 AS onboarded,
		now() - (g % 900) * interval '1 day' AS signed_up_at, 'pro'::text AS plan, 'US'::text AS country,
		g % 500 AS seats, (g % 1000) / 10.0::float8 AS score
		FROM generate_series(1, 1000000) g`); err != nil {
		b.Fatal(err)
	}
	src := New(Config{DSN: srv.SuperuserDSN(), Query: "SELECT * FROM bench"})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var n int64
		if err := src.Fetch(ctx, func(connector.Record, *connector.RecordError) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != 1000000 {
			b.Fatalf("rows = %d", n)
		}
	}
	b.ReportMetric(float64(b.N)*1e6/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/sync")
}
