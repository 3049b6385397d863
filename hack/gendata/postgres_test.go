package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/usersuccess/persona-operator/internal/testutil/pgtest"
)

// TestLoadPostgres loads the data into a real PostgreSQL and checks it is the
// same data the files hold: same users with the same NPS and features, same
// accounts, same feature requests. Beyond the files' 900 KiB budget it still
// loads (the scale benchmark's point), and a second load replaces the first.
func TestLoadPostgres(t *testing.T) {
	srv := pgtest.StartOrFail(t)
	ctx := context.Background()
	dsn := srv.SuperuserDSN()
	var log bytes.Buffer
	if err := run([]string{"-postgres", dsn, "-now", testNow, "-users", "2000", "-accounts", "200"}, &log); err != nil {
		t.Fatalf("gendata -postgres: %v\n%s", err, log.String())
	}
	files := readDir(t, generate(t, "-users", "2000", "-accounts", "200"))

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()

	// Users: every field the file has, compared row by row.
	want := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(files["users.ndjson"])), "\n") {
		var u map[string]any
		if err := json.Unmarshal([]byte(line), &u); err != nil {
			t.Fatal(err)
		}
		nps := "null"
		if v, ok := u["nps"]; ok {
			b, _ := json.Marshal(v)
			nps = string(b)
		}
		feats, _ := json.Marshal(u["features"])
		want[u["id"].(string)] = strings.Join([]string{u["account_id"].(string), u["email"].(string), u["role"].(string),
			nps, string(feats), u["last_login"].(string)}, "|")
	}
	rows, err := conn.Query(ctx, `SELECT id, account_id, email, role, coalesce(nps::text, 'null'), to_json(features)::text,
		to_char(last_login AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var id, acct, email, role, nps, feats, last string
		if err := rows.Scan(&id, &acct, &email, &role, &nps, &feats, &last); err != nil {
			t.Fatal(err)
		}
		got[id] = strings.Join([]string{acct, email, role, nps, feats, last}, "|")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) != 2000 {
		t.Fatalf("users: %d rows in PostgreSQL, %d in users.ndjson, want 2000", len(got), len(want))
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("user %s: PostgreSQL %q, file %q", id, got[id], w)
		}
	}

	// Accounts and feature requests: same counts as the CSV files (header excluded).
	csvRows := func(name string) int {
		recs, err := csv.NewReader(bytes.NewReader(files[name])).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return len(recs) - 1
	}
	count := func(q string) int {
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if g, w := count(`SELECT count(*) FROM accounts`), csvRows("accounts.csv"); g != w || g != 200 {
		t.Errorf("accounts: %d rows, accounts.csv has %d, want 200", g, w)
	}
	if g, w := count(`SELECT count(*) FROM feature_requests`), csvRows("feature-requests.csv"); g != w || g == 0 {
		t.Errorf("feature_requests: %d rows, feature-requests.csv has %d", g, w)
	}
	// Every user has a country, a locale and a creation no later than the last login.
	if n := count(`SELECT count(*) FROM users WHERE country = '' OR locale = '' OR created_at > last_login`); n != 0 {
		t.Errorf("%d users with an empty country or locale, or created after their last login", n)
	}
	// The indexes a deployment would have, for the incremental reads too.
	for _, idx := range []string{"users_pkey", "users_account_id_idx", "users_updated_at_idx", "accounts_pkey",
		"accounts_updated_at_idx", "feature_requests_pkey", "feature_requests_user_id_idx", "feature_requests_updated_at_idx"} {
		if count(`SELECT count(*) FROM pg_indexes WHERE indexname = '`+idx+`'`) != 1 {
			t.Errorf("index %s missing", idx)
		}
	}
	// New feature requests take ids after the loaded ones.
	if _, err := conn.Exec(ctx, `INSERT INTO feature_requests (user_id, feature, requested_at) VALUES ('u-00001', 'sso', now())`); err != nil {
		t.Errorf("insert a feature request after the load: %v", err)
	}

	// No file budget: 20000 users (users.ndjson would be over 900 KiB) load,
	// replacing the tables; -request-rate 2.5 gives about one request per user.
	if err := run([]string{"-postgres", dsn, "-now", testNow, "-users", "20000", "-accounts", "2000", "-request-rate", "2.5"}, &log); err != nil {
		t.Fatalf("gendata -postgres -users 20000: %v", err)
	}
	if n := count(`SELECT count(*) FROM users`); n != 20000 {
		t.Errorf("after the second load: %d users, want 20000", n)
	}
	if n := count(`SELECT count(*) FROM feature_requests`); n < 16000 || n > 24000 {
		t.Errorf("-request-rate 2.5: %d feature requests for 20000 users, want about one each", n)
	}
	// -out and -postgres together are refused.
	out := filepath.Join(t.TempDir(), "x")
	if err := run([]string{"-postgres", dsn, "-out", out}, &log); err == nil {
		t.Error("-out with -postgres was accepted")
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("-out with -postgres wrote files")
	}
}
