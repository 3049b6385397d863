package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/netguard"
	"github.com/usersuccess/persona-operator/internal/testutil/pgtest"
)

// The tests read as `reader`, a non-superuser with SELECT on the fixtures only.
const readerPassword = "Reader-Passw0rd-123"

// srv is one real server for the whole package (starting one takes seconds).
var srv *pgtest.Server

func TestMain(m *testing.M) {
	// The test server listens on loopback, which the default policy denies;
	// dsn_test.go sets policies explicitly.
	netguard.SetSources(netguard.Policy{})
	pgtest.Main(m, func(s *pgtest.Server) error {
		srv = s
		return createFixtures(context.Background())
	})
}

// typeCases are the columns of the typed table: SQL type, the value of row 1,
// and what the connector must turn it into. Row 2 is NULL in every column.
var typeCases = []struct {
	col, sqlType, literal string
	want                  any
}{
	{"i2", "smallint", "1", int64(1)},
	{"i4", "integer", "-2", int64(-2)},
	{"i8", "bigint", "9007199254740993", int64(9007199254740993)},
	{"f4", "real", "1.5", 1.5},
	{"f8", "double precision", "2.25", 2.25},
	{"num", "numeric", "12.5", 12.5},
	{"num_big", "numeric", "1e400", "1" + strings.Repeat("0", 400)},
	{"num_nan", "numeric", "'NaN'", "NaN"},
	{"num_inf", "numeric", "'-Infinity'", "-Infinity"},
	{"b", "boolean", "true", true},
	{"t", "text", "'héllo'", "héllo"},
	{"vc", "varchar(20)", "'pro'", "pro"},
	{"ts", "timestamp", "'2026-11-20 10:00:00.5'", time.Date(2026, 11, 20, 10, 0, 0, 5e8, time.UTC)},
	{"tstz", "timestamptz", "'2026-11-20T10:00:00+02:00'", time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)},
	{"d", "date", "'2027-01-15'", time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)},
	{"u", "uuid", "'6F9619FF-8B86-D011-B42D-00C04FC964FF'", "6f9619ff-8b86-d011-b42d-00c04fc964ff"},
	{"js", "json", `'{"plan":"pro","seats":3,"tags":["a",true,null]}'`,
		map[string]any{"plan": "pro", "seats": float64(3), "tags": []any{"a", true, nil}}},
	{"jsb", "jsonb", `'[1,"two",{"x":false}]'`, []any{float64(1), "two", map[string]any{"x": false}}},
	{"jsb_str", "jsonb", `'"scalar"'`, "scalar"},
	{"arr", "text[]", "ARRAY['sso','api',NULL]", []any{"sso", "api", nil}},
	{"iarr", "integer[]", "ARRAY[1,2,3]", []any{int64(1), int64(2), int64(3)}},
	{"iv", "interval", "'1 day 2 hours 3.5 seconds'", 26*time.Hour + 3500*time.Millisecond},
	{"iv_months", "interval", "'1 year 1 month'", (365*24+6)*time.Hour + 30*24*time.Hour},
	{"by", "bytea", `'\x6869'`, "hi"},
	{"mood", "mood", "'happy'", "happy"},
	{"tod", "time", "'10:30:00'", "10:30:00.000000"},
	{"ip", "inet", "'10.0.0.1'", "10.0.0.1/32"},
}

func createFixtures(ctx context.Context) error {
	cols := []string{"id text"}
	vals := []string{"'u1'"}
	for _, c := range typeCases {
		cols = append(cols, c.col+" "+c.sqlType)
		vals = append(vals, c.literal)
	}
	for _, sql := range []string{
		fmt.Sprintf(`CREATE ROLE reader LOGIN PASSWORD '%s'`, readerPassword),
		`CREATE TYPE mood AS ENUM ('happy', 'sad')`,
		`CREATE TABLE typed (` + strings.Join(cols, ", ") + `)`,
		`INSERT INTO typed VALUES (` + strings.Join(vals, ", ") + `)`,
		`INSERT INTO typed (id) VALUES ('u2')`,
		`CREATE TABLE many AS SELECT g AS n, 'u' || g AS id FROM generate_series(1, 50000) g`,
		`CREATE TABLE changing AS SELECT 'u' || g AS id, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute' AS updated_at
			FROM generate_series(1, 10) g`,
		`GRANT SELECT ON typed, many, changing TO reader`,
	} {
		if err := srv.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

func readerDSN() string { return srv.DSN("reader", readerPassword, "postgres") }

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
	recs, err := collect(t, Config{DSN: readerDSN(), Query: "SELECT * FROM typed ORDER BY id"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Num != 1 || recs[1].Num != 2 {
		t.Fatalf("records = %+v", recs)
	}
	for _, tc := range typeCases {
		t.Run(tc.col, func(t *testing.T) {
			got, ok := recs[0].Get(tc.col)
			if ts, isTime := got.(time.Time); isTime {
				got = ts.UTC() // timestamptz arrives in the local zone
			}
			if !ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s %s = %#v (%T), want %#v (%T)", tc.col, tc.sqlType, got, got, tc.want, tc.want)
			}
			if v, ok := recs[1].Get(tc.col); !ok || v != nil {
				t.Errorf("NULL %s = %#v (present %v), want a nil value", tc.col, v, ok)
			}
		})
	}
}

func TestNumericLargeButFinite(t *testing.T) {
	recs, err := collect(t, Config{DSN: readerDSN(), Query: "SELECT 1e300::numeric AS big, 'NaN'::float8 AS nan"})
	if err != nil {
		t.Fatal(err)
	}
	if v := recs[0].Values[0]; v != 1e300 {
		t.Errorf("1e300::numeric = %#v, want float64 1e300", v)
	}
	if v, ok := recs[0].Values[1].(float64); !ok || !math.IsNaN(v) {
		t.Errorf("'NaN'::float8 = %#v, want float64 NaN", recs[0].Values[1])
	}
}

func TestStreamsManyRowsInOrder(t *testing.T) {
	var n int64
	var fields []string
	err := New(Config{DSN: readerDSN(), Query: "SELECT n, id FROM many ORDER BY n"}).
		Fetch(context.Background(), func(r connector.Record, _ *connector.RecordError) error {
			n++
			if r.Num != n || r.Values[0] != n || r.Values[1] != fmt.Sprintf("u%d", n) {
				return fmt.Errorf("record %d has Num %d and values %v", n, r.Num, r.Values)
			}
			if fields == nil {
				fields = r.Fields
			} else if &fields[0] != &r.Fields[0] {
				return errors.New("fields are not one shared slice")
			}
			return nil
		})
	if err != nil || n != 50000 {
		t.Fatalf("streamed %d rows, err %v", n, err)
	}
	if !reflect.DeepEqual(fields, []string{"n", "id"}) {
		t.Fatalf("fields = %v", fields)
	}
}

// errorCase is a Fetch that must fail: wantReason "" means transient.
type errorCase struct {
	name       string
	cfg        Config
	timeout    time.Duration
	wantReason string
	wantIn     string
}

func TestErrors(t *testing.T) {
	dsn := readerDSN()
	const wrong = "Wrong-Passw0rd-xyz"
	tests := []errorCase{
		{name: "wrong password", cfg: Config{DSN: srv.DSN("reader", wrong, "postgres"), Query: "SELECT 1"},
			wantReason: "AuthenticationFailed", wantIn: "28P01"},
		{name: "no password", cfg: Config{DSN: srv.DSN("reader", "", "postgres"), Query: "SELECT 1"},
			wantReason: "AuthenticationFailed"},
		{name: "unknown role", cfg: Config{DSN: srv.DSN("nobody", wrong, "postgres"), Query: "SELECT 1"},
			wantReason: "AuthenticationFailed"},
		{name: "unknown database", cfg: Config{DSN: srv.DSN("reader", readerPassword, "nodb"), Query: "SELECT 1"},
			wantReason: "DatabaseNotFound", wantIn: "3D000"},
		{name: "bad DSN", cfg: Config{DSN: "postgres://reader:" + wrong + "@127.0.0.1:notaport/x", Query: "SELECT 1"},
			wantReason: "InvalidDSN"},
		{name: "unknown DSN parameter", cfg: Config{DSN: "host=127.0.0.1 password=" + wrong + " sslmode=bogus", Query: "SELECT 1"},
			wantReason: "InvalidDSN"},
		{name: "TLS required, server has none", cfg: Config{DSN: strings.Replace(dsn, "sslmode=disable", "sslmode=require", 1), Query: "SELECT 1"},
			wantReason: "TLSFailed"},
		{name: "syntax error", cfg: Config{DSN: dsn, Query: "SELEC id FROM typed"},
			wantReason: "InvalidQuery", wantIn: `syntax error at or near "SELEC" (SQLSTATE 42601) at character 1`},
		{name: "unknown table", cfg: Config{DSN: dsn, Query: "SELECT id FROM nope"},
			wantReason: "InvalidQuery", wantIn: `relation "nope" does not exist (SQLSTATE 42P01)`},
		{name: "unknown column", cfg: Config{DSN: dsn, Query: "SELECT nope FROM typed"},
			wantReason: "InvalidQuery", wantIn: "42703"},
		{name: "unknown function", cfg: Config{DSN: dsn, Query: "SELECT nope(id) FROM typed"},
			wantReason: "InvalidQuery", wantIn: "42883"},
		{name: "insert in read-only transaction", cfg: Config{DSN: dsn, Query: "INSERT INTO typed (id) VALUES ('x') RETURNING id"},
			wantReason: "InvalidQuery", wantIn: "read-only transaction (SQLSTATE 25006)"},
		{name: "update in read-only transaction", cfg: Config{DSN: srv.SuperuserDSN(), Query: "UPDATE typed SET t = 'x' RETURNING id"},
			wantReason: "InvalidQuery", wantIn: "25006"},
		{name: "no privilege", cfg: Config{DSN: dsn, Query: "SELECT * FROM pg_authid"},
			wantReason: "PermissionDenied", wantIn: "42501"},
		{name: "a data exception does not quote the value", cfg: Config{DSN: dsn, Query: "SELECT t::int FROM typed"},
			wantIn: "SQLSTATE 22P02"},
		{name: "a raised exception does not quote the message", cfg: Config{DSN: dsn,
			Query: `DO $$ BEGIN RAISE EXCEPTION 'u1 secret'; END $$`}, wantIn: "SQLSTATE P0001"},
		{name: "nothing listening", cfg: Config{DSN: closedPortDSN(t, wrong), Query: "SELECT 1"},
			wantIn: "unreachable"},
		{name: "timeout while connecting", timeout: time.Nanosecond, cfg: Config{DSN: dsn, Query: "SELECT 1"},
			wantIn: "timed out"},
		{name: "timeout during the query", timeout: 300 * time.Millisecond, cfg: Config{DSN: dsn, Query: "SELECT pg_sleep(5)"},
			wantIn: "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkError(t, tt, wrong) })
	}
}

func checkError(t *testing.T, tt errorCase, wrongPassword string) {
	ctx := context.Background()
	if tt.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, tt.timeout)
		defer cancel()
	}
	err := New(tt.cfg).Fetch(ctx, func(connector.Record, *connector.RecordError) error { return nil })
	if err == nil {
		t.Fatal("want an error")
	}
	t.Logf("%s: %v", connector.ConfigReason(err), err)
	if got := connector.ConfigReason(err); got != tt.wantReason {
		t.Fatalf("reason = %q, want %q (error: %v)", got, tt.wantReason, err)
	}
	if connector.IsConfig(err) != (tt.wantReason != "") {
		t.Fatalf("IsConfig = %v for %v", connector.IsConfig(err), err)
	}
	if !strings.Contains(err.Error(), tt.wantIn) {
		t.Fatalf("error %q does not contain %q", err, tt.wantIn)
	}
	// Credentials, connection parameters and row values never appear.
	for _, secret := range []string{tt.cfg.DSN, wrongPassword, readerPassword, "postgres://",
		"user=", "host=", "127.0.0.1", "u1", "héllo"} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error leaks %q: %v", secret, err)
		}
	}
}

// closedPortDSN points at a loopback port nothing listens on.
func closedPortDSN(t *testing.T, password string) string {
	t.Helper()
	s := strings.Replace(srv.DSN("reader", password, "postgres"), fmt.Sprintf(":%d/", srv.Port()), ":1/", 1)
	if !strings.Contains(s, "127.0.0.1:1/") {
		t.Fatalf("could not rewrite the port of the DSN")
	}
	return s
}

// A timed-out query must stop on the server too, not only in the client (pgx
// sends a cancel request when it abandons a connection).
func TestTimeoutCancelsTheServerQuery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	const probe = "SELECT pg_sleep(30) AS timeout_probe"
	err := New(Config{DSN: readerDSN(), Query: probe}).Fetch(ctx, func(connector.Record, *connector.RecordError) error { return nil })
	if err == nil || connector.IsConfig(err) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	conn, err := pgx.Connect(context.Background(), srv.SuperuserDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var running int
	for range 20 {
		err := conn.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1", probe).Scan(&running)
		if err != nil {
			t.Fatal(err)
		}
		if running == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the query still runs on the server 2 s after the timeout")
}

// endless streams rows for minutes: only an abandoned query ends quickly.
const endless = "SELECT generate_series(1, 1000000000) AS n"

func TestVisitorErrorStopsTheSync(t *testing.T) {
	stop := errors.New("stop")
	var n int
	start := time.Now()
	err := New(Config{DSN: readerDSN(), Query: endless}).
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
	// Draining the rest of the result instead of dropping it would take minutes.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stopping took %v", d)
	}
}

func TestCancelMidStream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n int
	start := time.Now()
	err := New(Config{DSN: readerDSN(), Query: endless}).
		Fetch(ctx, func(connector.Record, *connector.RecordError) error {
			if n++; n == 1000 {
				cancel()
			}
			return nil
		})
	if err == nil || connector.IsConfig(err) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancelling took %v (%d rows)", d, n)
	}
}

// An administrator terminating the backend (57P01) is worth a retry.
func TestAdminShutdownIsTransient(t *testing.T) {
	var n int
	err := New(Config{DSN: readerDSN(), Query: "SELECT n, pg_backend_pid() FROM " +
		"(SELECT generate_series(1, 1000000000) AS n) s"}).
		Fetch(context.Background(), func(r connector.Record, _ *connector.RecordError) error {
			if n++; n == 1 {
				return srv.Exec(context.Background(), "SELECT pg_terminate_backend($1)", r.Values[1])
			}
			return nil
		})
	// Depending on timing the client sees the server's 57P01 FATAL or just the
	// closed connection; either way the error is transient.
	if err == nil || connector.IsConfig(err) {
		t.Fatalf("err = %v after %d rows, want a transient error", err, n)
	}
}

// BenchmarkSync1M streams 1 M rows of 15 mixed columns from a real server:
//
//	go test ./internal/connector/postgres/ -run '^$' -bench BenchmarkSync1M -benchtime 1x
//
// Target: at most 10 s per sync (the s/sync metric).
func BenchmarkSync1M(b *testing.B) {
	const rows = 1_000_000
	ctx := context.Background()
	if err := srv.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench AS SELECT
		'u' || g AS id, 'acct-' || (g / 7) AS account_id, 'user' || g || '@example.com' AS email,
		(ARRAY['decision_maker','champion','end_user'])[1 + g % 3] AS role, g % 11 AS nps,
		now() - (g % 300) * interval '1 day' AS last_login, (g % 60)::bigint AS logins_30d,
		ARRAY['reports','sso'] AS features, g % 13 = 0 AS beta, g % 4 <> 0 AS onboarded,
		now() - (g % 900) * interval '1 day' AS signed_up_at, 'pro'::text AS plan, 'US'::text AS country,
		(g % 500)::smallint AS seats, (g % 1000) / 10.0::float8 AS score
		FROM generate_series(1, 1000000) g`); err != nil {
		b.Fatal(err)
	}
	src := New(Config{DSN: srv.SuperuserDSN(), Query: "SELECT * FROM bench"})
	b.ResetTimer()
	for range b.N {
		var n int64
		if err := src.Fetch(ctx, func(connector.Record, *connector.RecordError) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != rows {
			b.Fatalf("rows = %d, want %d", n, rows)
		}
	}
	b.ReportMetric(float64(b.N)*rows/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/sync")
}

// TestChanges: an incremental sync wraps the query, asks for the rows at or
// after the watermark, in watermark order, whatever the query's own order and
// a trailing semicolon; an odd column name is quoted, not spliced.
func TestChanges(t *testing.T) {
	since := time.Date(2026, 1, 1, 0, 8, 0, 0, time.UTC)
	recs, err := collect(t, Config{DSN: readerDSN(), Query: "SELECT id, updated_at FROM changing ORDER BY id DESC;  ",
		Changes: &Changes{WatermarkColumn: "updated_at", Since: since}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.Values[0].(string))
	}
	if got := strings.Join(ids, ","); got != "u8,u9,u10" {
		t.Errorf("rows %s, want u8,u9,u10", got)
	}
	_, err = collect(t, Config{DSN: readerDSN(), Query: "SELECT id FROM changing",
		Changes: &Changes{WatermarkColumn: `x"; DROP TABLE changing; --`, Since: since}})
	if !connector.IsConfig(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a column that is not in the query: %v, want an undefined-column config error", err)
	}
}

// TestListen: the listener calls back on a NOTIFY of its channel (a name that
// needs quoting), and returns once its context is done.
func TestListen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan struct{}, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Listen(ctx, readerDSN(), "persona changes", func(context.Context) { got <- struct{}{} })
	}()
	deadline := time.After(20 * time.Second)
	for seen := false; !seen; {
		// Repeated until seen: the listener may not be connected yet.
		if err := srv.Exec(ctx, `NOTIFY "persona changes"`); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
			seen = true
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("no callback for a NOTIFY")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after its context was cancelled")
	}
}
