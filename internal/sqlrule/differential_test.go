package sqlrule_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/connector/netguard"
	"github.com/usersuccess/persona-operator/internal/connector/postgres"
	"github.com/usersuccess/persona-operator/internal/datasource"
	"github.com/usersuccess/persona-operator/internal/insight"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/rule"
	"github.com/usersuccess/persona-operator/internal/sqlrule"
	"github.com/usersuccess/persona-operator/internal/testutil/pgtest"
	"github.com/usersuccess/persona-operator/internal/testutil/rulegen"
)

// The differential test: rules from the project's random rule generator,
// over data with absent values, NULLs, users without signals, extreme ints,
// doubles (NaN, ±Inf, -0), timestamps and intervals, and Unicode strings and
// ids, evaluated by the in-memory evaluator over a store loaded by the real
// PostgreSQL connector and DataSource sync, and by the translated query in
// the same database: the members must be identical, or the rule refused.

var srv *pgtest.Server

func TestMain(m *testing.M) {
	pgtest.Main(m, func(s *pgtest.Server) error { srv = s; return nil })
}

var (
	now     = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
)

func boolp(b bool) *bool { return &b }

// sources are the DataSources of the differential test: two User sources
// that merge (precedence, padded ids), an Account source, and two Signal
// sources (a list of values, a list of records).
func sources() []v1alpha1.DataSource {
	pg := func(q string) *v1alpha1.PostgresSource { return &v1alpha1.PostgresSource{Query: q} }
	ds := func(name string, spec v1alpha1.DataSourceSpec) v1alpha1.DataSource {
		spec.Type = v1alpha1.DataSourcePostgreSQL
		d := v1alpha1.DataSource{Spec: spec}
		d.Name = name
		return d
	}
	return []v1alpha1.DataSource{
		ds("crm", v1alpha1.DataSourceSpec{Priority: 10, Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
			Postgres: pg("SELECT * FROM users_a;"),
			Attributes: []v1alpha1.AttributeMapping{
				{Name: "role", Type: v1alpha1.TypeString}, {Name: "nps", Type: v1alpha1.TypeInt},
				{Name: "score", Type: v1alpha1.TypeDouble}, {Name: "lastLogin", From: "last_login", Type: v1alpha1.TypeTimestamp},
				{Name: "tenure", Type: v1alpha1.TypeDuration}, {Name: "active", Type: v1alpha1.TypeBool},
			}}),
		ds("legacy", v1alpha1.DataSourceSpec{Key: v1alpha1.RecordKey{UserID: "uid", AccountID: "acct"},
			Postgres: pg("SELECT uid, acct, nps, role, score, plan, seen FROM users_b"),
			Attributes: []v1alpha1.AttributeMapping{
				{Name: "role", Type: v1alpha1.TypeString}, {Name: "nps", Type: v1alpha1.TypeInt},
				{Name: "lastLogin", From: "seen", Type: v1alpha1.TypeTimestamp},
				{Name: "score", Type: v1alpha1.TypeDouble}, {Name: "plan", Type: v1alpha1.TypeString, Optional: boolp(false)},
			}}),
		ds("billing", v1alpha1.DataSourceSpec{Priority: -5, Postgres: pg("SELECT id, nps FROM users_c"),
			Attributes: []v1alpha1.AttributeMapping{{Name: "nps", Type: v1alpha1.TypeInt}}}),
		ds("accounts", v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "id"},
			Postgres: pg("SELECT id, tier, arr, renewal, seats FROM accounts"),
			Attributes: []v1alpha1.AttributeMapping{
				{Name: "tier", Type: v1alpha1.TypeString}, {Name: "arr", Type: v1alpha1.TypeDouble},
				{Name: "renewalDate", From: "renewal", Type: v1alpha1.TypeTimestamp}, {Name: "seats", Type: v1alpha1.TypeInt},
			}}),
		ds("features", v1alpha1.DataSourceSpec{Entity: v1alpha1.EntitySignal, Key: v1alpha1.RecordKey{UserID: "user_id"},
			Signal:     &v1alpha1.SignalSpec{Attribute: "features", ValueAttribute: "feature"},
			Postgres:   pg("SELECT user_id, feature FROM features"),
			Attributes: []v1alpha1.AttributeMapping{{Name: "feature", Type: v1alpha1.TypeString}}}),
		ds("tickets", v1alpha1.DataSourceSpec{Entity: v1alpha1.EntitySignal, Key: v1alpha1.RecordKey{UserID: "user_id"},
			Signal:     &v1alpha1.SignalSpec{Attribute: "tickets"},
			Postgres:   pg("SELECT user_id, priority, opened FROM tickets"),
			Attributes: []v1alpha1.AttributeMapping{{Name: "priority", Type: v1alpha1.TypeString}, {Name: "opened", Type: v1alpha1.TypeTimestamp}}}),
	}
}

const schema = `
CREATE TABLE users_a (id text, account text, role text, nps int8, score float8, last_login timestamptz, tenure interval, active bool);
CREATE TABLE users_b (uid varchar, acct text, nps int4, role varchar, score float4, plan text, seen timestamp);
CREATE TABLE users_c (id int8, nps int8);
CREATE TABLE accounts (id text, tier text, arr float8, renewal timestamptz, seats int8);
CREATE TABLE features (user_id text, feature text);
CREATE TABLE tickets (user_id text, priority text, opened date);
`

// fill loads n users' worth of generated data.
func fill(t testing.TB, ctx context.Context, conn *pgx.Conn, n int, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 2))
	pick := func(vals ...any) any { return vals[r.IntN(len(vals))] }
	strs := []any{nil, "decision_maker", "champion", "", "é", "日本語", "Zebra", "end_user", "champion ", "enterprise", "smb"}
	ints := []any{nil, int64(0), int64(3), int64(6), int64(7), int64(10), int64(-1), int64(math.MaxInt64), int64(math.MinInt64)}
	doubles := []any{nil, 0.0, math.Copysign(0, -1), 5.5, 6.0, math.NaN(), math.Inf(1), math.Inf(-1), -1e300, 9.3e18, 9007199254740993.0}
	times := []any{nil, now, now.Add(-time.Hour), now.Add(2160 * time.Hour), now.Add(-30 * 24 * time.Hour),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2200, 6, 1, 0, 0, 0, 5000, time.UTC), now.Add(3*365*24*time.Hour + 17*time.Second + 3*time.Microsecond),
		"infinity", "-infinity"}
	intervals := []any{nil, "0", "1 hour", "2160 hours", "-5 hours", "10 years", "100 years", "1000 years",
		"-300 years", "1 mon 2 days 3 hours", "9223372036854775 microseconds", "-9223372036854775 microseconds", "292 years 1 mon"}
	ids := func(i int) any {
		switch i % 23 {
		case 5:
			return fmt.Sprintf("  u%d\u00a0", i) // trimmed like strings.TrimSpace
		case 11:
			return "u\x01" + fmt.Sprint(i) // a control character: rejected
		case 13:
			return " \t "
		case 17:
			return strings.Repeat("é", 127) // 254 bytes: too long
		case 19:
			return nil
		}
		return fmt.Sprintf("u%d", i)
	}
	exec := func(sql string, args ...any) {
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for i := 0; i < n; i++ {
		account := any(fmt.Sprintf("a%d", i%11))
		switch i % 7 {
		case 0:
			account = nil
		case 3:
			account = fmt.Sprintf(" a%d ", i%11)
		}
		id := ids(i)
		if i%4 != 3 {
			exec(`INSERT INTO users_a VALUES ($1, $2, $3, $4, $5, $6, $7::interval, $8)`, id, account,
				pick(strs...), pick(ints...), pick(doubles...), pick(times...), pick(intervals...), pick(nil, true, false))
		}
		if i%3 != 0 {
			exec(`INSERT INTO users_b VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz AT TIME ZONE 'UTC')`, id, pick(nil, "a2", "a10", ""),
				pick(nil, int32(1), int32(9), int32(math.MaxInt32)), pick(strs...), pick(nil, float32(2.5), float32(math.NaN())),
				pick("pro", "pro", "pro", nil), pick(times...))
		}
		for range r.IntN(4) {
			exec(`INSERT INTO features VALUES ($1, $2)`, id, pick("sso", "audit_log", "é", "", "Zeta", "日本", "sso"))
		}
		for range r.IntN(3) {
			exec(`INSERT INTO tickets VALUES ($1, $2, $3::timestamptz AT TIME ZONE 'UTC')`, id, pick(nil, "high", "low", "é"), pick(times...))
		}
	}
	// Integer ids, formatted through float64 by the mapper.
	for _, id := range []int64{0, 7, -3, 1 << 53, 1<<53 - 1, -(1 << 53) - 1, 9007199254740995, math.MaxInt64, math.MinInt64, 1e15, 123456789012345678} {
		exec(`INSERT INTO users_c VALUES ($1, $2)`, id, pick(ints...))
	}
	for i := 0; i < 10; i++ { // a10 has no row: users know it by id only
		id := any(fmt.Sprintf("a%d", i))
		if i == 4 {
			id = " a4"
		}
		exec(`INSERT INTO accounts VALUES ($1, $2, $3, $4, $5)`, id, pick(strs...), pick(doubles...), pick(times...), pick(ints...))
	}
}

// fixture is a database loaded with data, the store loaded from it by the
// DataSource sync, and the translator's sources.
type fixture struct {
	conn    *pgx.Conn
	ns      *profile.Namespace
	sources []sqlrule.Source
}

func newFixture(t testing.TB, n int, seed uint64) *fixture {
	t.Helper()
	ctx := context.Background()
	db := fmt.Sprintf("diff%d", seed)
	if err := srv.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(srv.SuperuserDSN())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	dsn := u.String()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, schema); err != nil {
		t.Fatal(err)
	}
	fill(t, ctx, conn, n, seed)
	f := &fixture{conn: conn, ns: profile.NewStore().Namespace("diff")}
	for _, ds := range sources() {
		m, err := attr.NewMapper(&ds.Spec)
		if err != nil {
			t.Fatal(err)
		}
		out := datasource.Run(ctx, datasource.Request{Name: ds.Name, Priority: ds.Spec.Priority, Mapper: m, Now: time.Now,
			Source: postgres.New(postgres.Config{DSN: dsn, Query: ds.Spec.Postgres.Query}, postgres.WithPolicy(netguard.Policy{}))})
		if out.FetchErr != nil {
			t.Fatalf("%s: %v", ds.Name, out.FetchErr)
		}
		f.ns.Apply(out.Data)
		cols, err := postgres.Describe(ctx, postgres.Config{DSN: dsn, Query: ds.Spec.Postgres.Query}, postgres.WithPolicy(netguard.Policy{}))
		if err != nil {
			t.Fatal(err)
		}
		f.sources = append(f.sources, sqlrule.Source{Name: ds.Name, Spec: ds.Spec, Columns: cols})
	}
	if f.ns.Source("crm").Records == 0 {
		t.Fatal("nothing loaded")
	}
	return f
}

// inMemory is the members ("id account") by the project's evaluator, and
// the next change by time alone (zero for none).
func (f *fixture) inMemory(t testing.TB, p *rule.Program, at time.Time) ([]string, time.Time) {
	var ids []string
	var next time.Time
	f.ns.Read(nil, func(v *profile.View) {
		e := p.NewEvaluator(v, at)
		for u := range v.Users() {
			if ok, _ := e.Match(u); ok {
				ids = append(ids, u.ID()+" "+u.AccountID())
			}
		}
		if a := p.Analysis(); a.UsesNow && a.Exact {
			next, _ = e.NextChange()
		}
	})
	slices.Sort(ids)
	return ids, next
}

// inDatabase is the members ("id account") by the translated query.
func (f *fixture) inDatabase(t testing.TB, q *sqlrule.Query, at time.Time) []string {
	t.Helper()
	rows, err := f.conn.Query(context.Background(), q.SQL, q.Args(at)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, q.SQL)
	}
	var ids, members []string
	var id, acct string
	if _, err := pgx.ForEachRow(rows, []any{&id, &acct}, func() error {
		ids, members = append(ids, id), append(members, id+" "+acct)
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, q.SQL)
	}
	if !slices.IsSorted(ids) {
		t.Fatalf("ids not in byte order: %q", ids)
	}
	slices.Sort(members) // as inMemory's
	return members
}

// nextInDatabase is the next change by time alone by the translated analysis.
func (f *fixture) nextInDatabase(t testing.TB, q *sqlrule.Query, at time.Time) time.Time {
	t.Helper()
	if q == nil {
		return time.Time{}
	}
	var text *string
	if err := f.conn.QueryRow(context.Background(), q.SQL, q.Args(at)...).Scan(&text); err != nil {
		t.Fatalf("%v\n%s", err, q.SQL)
	}
	next, _, err := sqlrule.Instant(text)
	if err != nil {
		t.Fatal(err)
	}
	return next
}

func (f *fixture) compile(t testing.TB, expr string) (*rule.Program, error) {
	var p *rule.Program
	var err error
	f.ns.Read(nil, func(v *profile.View) { p, err = rule.Compile(expr, v.Schema()) })
	return p, err
}

// nextChanges counts the comparisons of a next change that is not "none".
var nextChanges int

var nows = []time.Time{now, now.Add(2160 * time.Hour), maxTime, minTime}

// check compares one rule both ways at every instant of nows; it reports
// whether it was translated.
func (f *fixture) check(t *testing.T, expr string) bool { return f.checkAt(t, expr, nows...) }

func (f *fixture) checkAt(t *testing.T, expr string, nows ...time.Time) bool {
	t.Helper()
	p, err := f.compile(t, expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	q, err := sqlrule.Translate(p, f.sources, sqlrule.PostgreSQL{})
	if err != nil {
		var r *sqlrule.Refusal
		if !errors.As(err, &r) || r.Reason == "" {
			t.Fatalf("%s: not a refusal with a reason: %v", expr, err)
		}
		return false
	}
	nq, err := sqlrule.NextChange(p, f.sources, sqlrule.PostgreSQL{})
	if err != nil {
		t.Fatalf("%s: the rule translates, its next change does not: %v", expr, err)
	}
	for _, at := range nows {
		want, wantNext := f.inMemory(t, p, at)
		got := f.inDatabase(t, q, at)
		if !slices.Equal(want, got) {
			t.Fatalf("%s at %s:\nin memory %q\nin SQL    %q\n%s", expr, at, want, got, q.SQL)
		}
		if next := f.nextInDatabase(t, nq, at); !next.Equal(wantNext) {
			t.Fatalf("%s at %s: next change in memory %s, in SQL %s", expr, at, wantNext, next)
		}
		if !wantNext.IsZero() {
			nextChanges++
		}
	}
	return true
}

func TestEdgeCases(t *testing.T) {
	f := newFixture(t, 120, 1)
	for _, expr := range []string{
		`true`, `has(user.nps)`, `user.nps <= 6`, `!(user.nps <= 6)`, `!has(user.nps) || user.nps > 6`,
		`user.role == "champion"`, `user.role < "d"`, `user.role > "Z"`, `user.role == ""`, `user.role >= "é"`,
		`user.score > 5`, `user.score == 0.0`, `user.score != user.score`, `user.score < user.nps`, `dyn(user.nps) == 6.0`,
		`dyn(user.score) == 9007199254740992`, `account.arr >= 0.0 || account.arr < 0.0`,
		`user.nps + 1 > 7`, `user.nps * 2 < 0`, `user.nps - 1 < 0`, `-user.nps > 0`, `user.nps / 0 == 0`, `account.seats / -1 < 0`,
		`account.renewalDate - now <= duration("2160h")`, `user.lastLogin + user.tenure > now`, `user.lastLogin - user.tenure < now`,
		`now - user.lastLogin > duration("720h")`, `user.lastLogin - account.renewalDate < duration("0s")`,
		`user.tenure > duration("2562047h")`, `user.tenure < duration("-2562047h")`,
		`user.active`, `user.active == false`, `user.active ? user.nps > 5 : user.role == "champion"`,
		`has(account.tier)`, `account.tier == "enterprise"`, `account.id == "a3"`, `user.accountId == "a10"`, `has(user.accountId)`,
		`has(account.id)`, `user.id == "u5"`, `user.id.startsWith("u1")`, `size(user.role) == 1`, `user.role.contains("é")`,
		`user.role in ["champion", "é"]`, `user.role in []`, `user.nps in [6, 7]`, `user.score in [5.5, 6]`,
		`has(user.features)`, `"sso" in user.features`, `"" in user.features`, `size(user.features) >= 2`,
		`user.features.exists(f, f == "sso")`, `user.features.all(f, f < "m")`,
		`has(user.tickets)`, `user.tickets.exists(t, t.priority == "high")`, `user.tickets.all(t, has(t.priority))`,
		`user.tickets.exists(t, t.opened > now - duration("720h"))`, `user.plan == "pro" && user.nps > 5`,
		`user.role + "x" == "champion x"`,
	} {
		if !f.check(t, expr) {
			t.Errorf("%s: refused", expr)
		}
	}
	if nextChanges < 10 {
		t.Errorf("only %d next changes compared that were not none", nextChanges)
	}
	for _, expr := range rulegen.Refused {
		p, err := f.compile(t, expr)
		if err != nil {
			t.Fatal(err)
		}
		_, err = sqlrule.Translate(p, f.sources, sqlrule.PostgreSQL{})
		var r *sqlrule.Refusal
		if !errors.As(err, &r) || r.Line != 1 || r.Column < 1 || r.Expr == "" {
			t.Errorf("%s: want a refusal with a position, got %v", expr, err)
		}
	}
}

// TestRandomRules is the differential test over the project's rule generator.
func TestRandomRules(t *testing.T) {
	f := newFixture(t, 150, 2)
	r := rand.New(rand.NewPCG(14, 14))
	translated, refused, invalid := 0, 0, 0
	reasons := map[string]int{}
	for i := 0; translated+refused < 2000; i++ {
		data := make([]byte, 48)
		for j := range data {
			data[j] = byte(r.UintN(256))
		}
		g := rulegen.New(data)
		g.Signals, g.Extreme = true, true
		expr := g.Rule()
		if _, err := f.compile(t, expr); err != nil {
			invalid++ // comparing types CEL does not compare
			continue
		}
		// At now and one other instant, in turn: the query is the same,
		// only the parameter changes.
		if f.checkAt(t, expr, now, nows[1+i%(len(nows)-1)]) {
			translated++
			continue
		}
		refused++
		p, _ := f.compile(t, expr)
		_, err := sqlrule.Translate(p, f.sources, sqlrule.PostgreSQL{})
		var ref *sqlrule.Refusal
		if !errors.As(err, &ref) || ref.Line < 1 || ref.Expr == "" {
			t.Fatalf("%s: want a refusal with a position, got %v", expr, err)
		}
		reasons[ref.Reason]++
	}
	t.Logf("%d translated and identical, %d refused, %d did not compile: refusals %v", translated, refused, invalid, reasons)
	if translated < 1500 || refused == 0 {
		t.Fatalf("only %d of 2000 rules translated: %v", translated, reasons)
	}
}

// TestInsights: insights aggregated in the database equal the in-memory
// accumulator's over the same members, or are refused with a reason.
func TestInsights(t *testing.T) {
	f := newFixture(t, 120, 3)
	rules := []string{`true`, `has(user.nps) && user.nps <= 6`, `account.tier == "enterprise" || user.role >= "d"`, `false`}
	insights := []struct {
		typ  v1alpha1.InsightType
		expr string
	}{
		{v1alpha1.InsightTopValues, `user.role`}, {v1alpha1.InsightTopValues, `account.tier`},
		{v1alpha1.InsightTopValues, `user.nps`}, {v1alpha1.InsightTopValues, `user.active`},
		{v1alpha1.InsightTopValues, `has(user.role) ? user.role : "none"`},
		{v1alpha1.InsightSum, `user.nps`}, {v1alpha1.InsightAverage, `account.seats`}, {v1alpha1.InsightMin, `user.nps`},
		{v1alpha1.InsightMax, `account.seats`}, {v1alpha1.InsightMax, `user.score`}, {v1alpha1.InsightMin, `user.score`},
		{v1alpha1.InsightSum, `user.nps * 2`},
	}
	computed := 0
	for _, expr := range rules {
		p, err := f.compile(t, expr)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range insights {
			spec := v1alpha1.InsightSpec{Name: "i", Type: in.typ, Expression: in.expr}
			var prg *rule.Program
			compile := rule.CompileNumber
			if in.typ == v1alpha1.InsightTopValues {
				compile = rule.CompileValue
			}
			f.ns.Read(nil, func(v *profile.View) { prg, err = compile(in.expr, v.Schema()) })
			if err != nil {
				t.Fatal(err)
			}
			want := insight.ForSpec(spec)
			f.ns.Read(nil, func(v *profile.View) {
				e, ie := p.NewEvaluator(v, now), prg.NewEvaluator(v, now)
				for u := range v.Users() {
					if ok, _ := e.Match(u); ok {
						if val, err := ie.Eval(u); err != nil {
							want.AddError(err)
						} else {
							want.Add(val)
						}
					}
				}
			})
			q, err := sqlrule.Insight(p, prg, in.typ == v1alpha1.InsightTopValues, f.sources, sqlrule.PostgreSQL{})
			if err != nil {
				var r *sqlrule.Refusal
				if !errors.As(err, &r) || r.Reason == "" {
					t.Fatalf("%s / %s: not a refusal: %v", expr, in.expr, err)
				}
				continue
			}
			got := insight.ForSpec(spec)
			rows, err := f.conn.Query(context.Background(), q.SQL, q.Args(now)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, q.SQL)
			}
			for rows.Next() {
				if q.Top {
					var v *string
					var n int64
					if err := rows.Scan(&v, &n); err != nil {
						t.Fatal(err)
					}
					if v == nil {
						got.AddMissing(n, "no value")
					} else {
						got.AddCount(*v, n)
					}
					continue
				}
				var n, all int64
				var sum, lo, hi *float64
				if err := rows.Scan(&n, &all, &sum, &lo, &hi); err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					got.AddNumbers(n, *sum, *lo, *hi)
				}
				got.AddMissing(all-n, "no value")
			}
			if rows.Err() != nil {
				t.Fatal(rows.Err())
			}
			w, g := want.Result(), got.Result()
			if !reflect.DeepEqual(w.Values, g.Values) || w.Value != g.Value || w.Members != g.Members ||
				(w.Error == "") != (g.Error == "") || want.Errors() != got.Errors() {
				t.Fatalf("%s / %s %s:\nin memory %+v (%d errors)\nin SQL    %+v (%d errors)\n%s", expr, in.typ, in.expr, w, want.Errors(), g, got.Errors(), q.SQL)
			}
			computed++
		}
	}
	if computed < len(rules)*(len(insights)-3) {
		t.Fatalf("only %d insights computed in the database", computed)
	}
}

// An integer column read as a Double attribute: PostgreSQL's int8::float8
// gives exactly the double the mapper's float64(x) gives, past 2^53 too.
func TestIntColumnAsDouble(t *testing.T) {
	ctx := context.Background()
	xs := []int64{0, 1, -1, 1<<53 + 1, 1<<53 + 3, -(1<<53 + 1), 1<<62 + 1<<10 + 1, math.MaxInt64, math.MinInt64, 123456789012345678}
	conn, err := pgx.Connect(ctx, srv.SuperuserDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	col, err := sqlrule.PostgreSQL{}.Column("x", "int8", attr.Double)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT "+col+" FROM unnest($1::int8[]) WITH ORDINALITY AS t(x, i) ORDER BY i", xs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[float64])
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range xs {
		if want, err := attr.Convert(x, attr.Double); err != nil || got[i] != want {
			t.Errorf("%d: PostgreSQL %v, mapper %v", x, got[i], want)
		}
	}
}
