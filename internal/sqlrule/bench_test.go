package sqlrule_test

import (
	"context"
	"fmt"
	"iter"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/connector/netguard"
	"github.com/usersuccess/persona-operator/internal/connector/postgres"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/rule"
	"github.com/usersuccess/persona-operator/internal/sqlrule"
)

// A persona evaluated in the database, 200,000 users (about 64 % members)
// in a real PostgreSQL: the translated query alone, its rows drained
// (Query), against the same query merged into the slices of the last pass
// with 1 % of the users changed (Stream): the time the merge adds, and what
// it allocates (B/op, most of it the written slices, made one at a time):
//
//	go test ./internal/sqlrule -run '^$' -bench StreamFromPostgres -benchmem
func BenchmarkStreamFromPostgres(b *testing.B) {
	const users, size = 200_000, 1000
	ctx := context.Background()
	u, err := url.Parse(srv.SuperuserDSN())
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/bench"
	dsn := u.String()
	_ = srv.Exec(ctx, "DROP DATABASE IF EXISTS bench")
	if err := srv.Exec(ctx, "CREATE DATABASE bench"); err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	exec := func(sql string) {
		if _, err := conn.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	exec(fmt.Sprintf(`CREATE TABLE users AS SELECT 'u' || lpad(g::text, 7, '0') AS id, 'a' || (g %% 500) AS account, (g * 7919) %% 11 AS nps
		FROM generate_series(1, %d) g`, users))
	spec := v1alpha1.DataSourceSpec{Type: v1alpha1.DataSourcePostgreSQL, Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
		Postgres:   &v1alpha1.PostgresSource{Query: "SELECT id, account, nps FROM users"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "nps", Type: v1alpha1.TypeInt}}}
	cols, err := postgres.Describe(ctx, postgres.Config{DSN: dsn, Query: spec.Postgres.Query}, postgres.WithPolicy(netguard.Policy{}))
	if err != nil {
		b.Fatal(err)
	}
	prg, err := rule.Compile("user.nps <= 6", profile.Schema{User: map[string]attr.Type{"nps": attr.Int}})
	if err != nil {
		b.Fatal(err)
	}
	q, err := sqlrule.Translate(prg, []sqlrule.Source{{Name: "users", Spec: spec, Columns: cols}}, sqlrule.PostgreSQL{})
	if err != nil {
		b.Fatal(err)
	}
	cfg := postgres.Config{DSN: dsn, Query: q.SQL, Settings: q.Settings}
	rows := func() iter.Seq2[membership.Row, error] {
		return func(yield func(membership.Row, error) bool) {
			err := postgres.Select(ctx, cfg, q.Args(now), time.Minute, func(r pgx.Rows) error {
				var row membership.Row
				if err := r.Scan(&row.ID, &row.AccountID); err != nil {
					return err
				}
				yield(row, nil)
				return nil
			}, postgres.WithPolicy(netguard.Policy{}))
			if err != nil {
				yield(membership.Row{}, err)
			}
		}
	}
	pass := func(stored membership.SliceList) (membership.SliceList, membership.Streamed) {
		byName := map[string]int{}
		for i, s := range stored {
			byName[s.Name] = i
		}
		next := append(membership.SliceList(nil), stored...)
		out, err := membership.Stream(membership.StreamInput{Stored: stored, Rows: rows(), Now: now, MaxPerSlice: size, SampleSize: 10,
			Write: func(st membership.Step) error {
				switch {
				case st.Delete:
					next[byName[st.Slice.Name]].Members = nil
				case st.Slice.Name == "":
					st.Slice.Name = fmt.Sprintf("s%05d", len(next))
					next = append(next, st.Slice)
				default:
					next[byName[st.Slice.Name]] = st.Slice
				}
				return nil
			}})
		if err != nil {
			b.Fatal(err)
		}
		return next, out
	}
	stored, first := pass(nil)
	// 1 % churn: every 100th user's nps moves across the threshold.
	exec(`UPDATE users SET nps = CASE WHEN nps <= 6 THEN 9 ELSE 2 END WHERE substr(id, 2)::int % 100 = 0`)

	b.Run("Query", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			n := 0
			for _, err := range rows() {
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n), "members")
		}
	})
	b.Run("Stream", func(b *testing.B) {
		b.ReportAllocs()
		var out membership.Streamed
		for range b.N {
			_, out = pass(stored)
		}
		b.ReportMetric(float64(out.Writes), "writes")
		b.ReportMetric(float64(out.Counts.Entered+out.Counts.Exited), "changes")
		if out.Members == first.Members || out.Counts.Entered == 0 || out.Counts.Exited == 0 {
			b.Fatalf("the churn was not seen: %+v after %+v", out, first)
		}
	})
}
