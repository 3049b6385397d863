// Package eventstore keeps the calls of the ingest endpoint in PostgreSQL, the
// system of record of Events DataSources: a call is acknowledged only once
// its transaction commits, a messageId is stored once per namespace (retries
// are no-ops), and every aggregate is computed from the stored events, so
// after a restart the attributes come back from the store, not from zero.
//
// Tables live in the schema persona_events, which Open creates: events (one
// row per call), users (merged identify traits, the user's account, first and
// last seen, kept when old events are pruned) and accounts (merged group
// traits). Errors never carry the DSN or a stored value.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersuccess/persona-operator/internal/tracking"
)

const schema = "persona_events"

// ddl creates the schema; every statement is idempotent, so every manager
// start runs it.
var ddl = []string{
	`CREATE SCHEMA IF NOT EXISTS ` + schema,
	`CREATE TABLE IF NOT EXISTS ` + schema + `.events (
		namespace    text        NOT NULL,
		message_id   text        NOT NULL,
		type         text        NOT NULL,
		user_id      text,
		anonymous_id text,
		group_id     text,
		event        text,
		properties   jsonb       NOT NULL,
		ts           timestamptz NOT NULL,
		received_at  timestamptz NOT NULL,
		PRIMARY KEY (namespace, message_id))`,
	`CREATE INDEX IF NOT EXISTS events_user ON ` + schema + `.events (namespace, user_id, ts)`,
	`CREATE INDEX IF NOT EXISTS events_ts ON ` + schema + `.events (namespace, ts)`,
	`CREATE TABLE IF NOT EXISTS ` + schema + `.users (
		namespace  text        NOT NULL,
		user_id    text        NOT NULL,
		traits     jsonb       NOT NULL DEFAULT '{}',
		account_id text,
		first_seen timestamptz NOT NULL,
		last_seen  timestamptz NOT NULL,
		PRIMARY KEY (namespace, user_id))`,
	`CREATE TABLE IF NOT EXISTS ` + schema + `.accounts (
		namespace  text  NOT NULL,
		account_id text  NOT NULL,
		traits     jsonb NOT NULL DEFAULT '{}',
		PRIMARY KEY (namespace, account_id))`,
}

// defaultMaxConns is the connection pool's size unless the DSN sets
// pool_max_conns.
const defaultMaxConns = 16

// Store is the event store.
type Store struct {
	pool *pgxpool.Pool

	mu sync.Mutex
	// queue holds the Writes waiting for a group commit; committing counts
	// the goroutines committing them.
	queue      []*write
	committing int
}

// Open connects and creates the schema. The DSN is never part of an error.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("the event store DSN does not parse")
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		// Concurrent requests commit together (PostgreSQL groups their
		// flushes): pgxpool's default of 4 connections caps ingest well below
		// what the database sustains. pool_max_conns in the DSN overrides it.
		cfg.MaxConns = defaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the event store: %w", safe(err))
	}
	s := &Store{pool: pool}
	for _, stmt := range ddl {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			pool.Close()
			return nil, fmt.Errorf("creating the event store schema: %w", safe(err))
		}
	}
	return s, nil
}

// Close closes the connections.
func (s *Store) Close() { s.pool.Close() }

// Written is what one Write stored.
type Written struct {
	// Inserted counts the calls stored; the others were retries of stored
	// messageIds.
	Inserted int
	// Users are the userIds of the inserted calls, each once: the profiles
	// whose attributes may have changed.
	Users []string
	// Calls are the inserted calls, in request order: what the users'
	// aggregate states add (UserAggregates).
	Calls []tracking.Call
	// NewUsers are the Users the store did not know before this request's
	// transaction: every stored event of theirs is in it or in a request
	// that committed after it, so their aggregate state starts empty rather
	// than read from the store.
	NewUsers []string
}

const insertEvents = `INSERT INTO ` + schema + `.events
	(namespace, message_id, type, user_id, anonymous_id, group_id, event, properties, ts, received_at)
SELECT n, m, t, NULLIF(u, ''), NULLIF(a, ''), NULLIF(g, ''), NULLIF(ev, ''), p::jsonb, ts, r
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
	$9::timestamptz[], $10::timestamptz[]) AS x(n, m, t, u, a, g, ev, p, ts, r)
ON CONFLICT (namespace, message_id) DO NOTHING
RETURNING namespace, message_id`

const upsertUsers = `INSERT INTO ` + schema + `.users (namespace, user_id, first_seen, last_seen)
SELECT $1, u, f, l FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS x(u, f, l)
ON CONFLICT (namespace, user_id) DO NOTHING
RETURNING user_id`

// Group commit: concurrent Writes are stored together, in one transaction
// with one insert of all their calls, by at most committers goroutines at a
// time. Requests that arrive while a transaction commits wait for the next
// one and share it, so under load a commit (and, with synchronous_commit on,
// its WAL flush) serves many requests, and PostgreSQL runs one statement per
// group instead of one per request. Alone, a request commits at once.
const (
	committers = 2
	// maxGroupCalls bounds a group's calls (a group takes at least one
	// request, however large).
	maxGroupCalls = 5000
	// commitTimeout bounds a group's transaction: it serves several
	// requests, so no single request's context cancels it.
	commitTimeout = 30 * time.Second
)

// write is one request waiting for its group's commit.
type write struct {
	namespace  string
	calls      []tracking.Call
	receivedAt time.Time
	done       chan writeResult
}

type writeResult struct {
	written Written
	err     error
}

// Write stores the calls of one request; when it returns nil, they are
// committed. A call whose messageId the namespace already holds is skipped,
// traits included, so a retried request changes nothing. The request is
// stored whole or not at all: if its group's transaction fails, each request
// of the group is tried again alone, so one bad request fails only itself.
func (s *Store) Write(ctx context.Context, namespace string, calls []tracking.Call, receivedAt time.Time) (Written, error) {
	w := &write{namespace: namespace, calls: calls, receivedAt: receivedAt, done: make(chan writeResult, 1)}
	s.mu.Lock()
	s.queue = append(s.queue, w)
	if s.committing < committers {
		s.committing++
		go s.commitLoop()
	}
	s.mu.Unlock()
	select {
	case r := <-w.done:
		return r.written, r.err
	case <-ctx.Done():
		// The group may still commit: the client's retry finds the messageIds.
		return Written{}, ctx.Err()
	}
}

// commitLoop commits groups of queued requests until the queue is empty.
func (s *Store) commitLoop() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.committing--
			s.mu.Unlock()
			return
		}
		n, calls := 0, 0
		for n < len(s.queue) && (n == 0 || calls+len(s.queue[n].calls) <= maxGroupCalls) {
			calls += len(s.queue[n].calls)
			n++
		}
		group := slices.Clone(s.queue[:n])
		s.queue = slices.Delete(s.queue, 0, n)
		s.mu.Unlock()
		s.commit(group)
	}
}

// commit stores a group and answers its requests.
func (s *Store) commit(group []*write) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	out, err := s.writeGroup(ctx, group)
	if err != nil && len(group) > 1 {
		for _, w := range group {
			s.commit([]*write{w})
		}
		return
	}
	for i, w := range group {
		if err != nil {
			w.done <- writeResult{err: fmt.Errorf("storing events: %w", safe(err))}
			continue
		}
		w.done <- writeResult{written: out[i]}
	}
}

// writeGroup stores the calls of a group of requests in one transaction: one
// multi-row insert of the events, then the users' and accounts' traits per
// namespace, in request order. It returns what each request stored: a
// messageId twice in the group is stored once, for the earlier request.
func (s *Store) writeGroup(ctx context.Context, group []*write) ([]Written, error) {
	n := 0
	for _, w := range group {
		n += len(w.calls)
	}
	cols := struct{ n, m, t, u, a, g, ev, p []string }{make([]string, 0, n), make([]string, 0, n), make([]string, 0, n),
		make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)}
	ts, received := make([]time.Time, 0, n), make([]time.Time, 0, n)
	for _, w := range group {
		for _, c := range w.calls {
			cols.n = append(cols.n, w.namespace)
			cols.m = append(cols.m, c.MessageID)
			cols.t = append(cols.t, string(c.Type))
			cols.u = append(cols.u, c.UserID)
			cols.a = append(cols.a, c.AnonymousID)
			cols.g = append(cols.g, c.GroupID)
			cols.ev = append(cols.ev, c.Event)
			cols.p = append(cols.p, string(payload(c)))
			ts = append(ts, c.Timestamp)
			received = append(received, w.receivedAt)
		}
	}
	out := make([]Written, len(group))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, insertEvents, cols.n, cols.m, cols.t, cols.u, cols.a, cols.g, cols.ev, cols.p, ts, received)
		if err != nil {
			return err
		}
		fresh := map[messageKey]bool{}
		var k messageKey
		if _, err := pgx.ForEachRow(rows, []any{&k.namespace, &k.id}, func() error { fresh[k] = true; return nil }); err != nil {
			return err
		}
		if len(fresh) == 0 {
			return nil
		}
		// The stored calls of each namespace, in request order.
		stored := map[string][]tracking.Call{}
		var namespaces []string
		for i, w := range group {
			var mine []tracking.Call
			for _, c := range w.calls {
				key := messageKey{w.namespace, c.MessageID}
				if fresh[key] {
					delete(fresh, key) // a later duplicate in the group was not stored
					mine = append(mine, c)
				}
			}
			out[i] = Written{Inserted: len(mine), Users: users(mine), Calls: mine}
			if _, ok := stored[w.namespace]; !ok {
				namespaces = append(namespaces, w.namespace)
			}
			stored[w.namespace] = append(stored[w.namespace], mine...)
		}
		created := map[string]map[string]bool{}
		for _, ns := range namespaces {
			if created[ns], err = writeProfiles(ctx, tx, ns, stored[ns]); err != nil {
				return err
			}
		}
		for i, w := range group {
			for _, u := range out[i].Users {
				if created[w.namespace][u] {
					out[i].NewUsers = append(out[i].NewUsers, u)
				}
			}
		}
		return nil
	})
	return out, err
}

// messageKey is a stored call's identity.
type messageKey struct{ namespace, id string }

// payload is what a call stores in the properties column: its properties, or
// for identify and group its traits.
func payload(c tracking.Call) json.RawMessage {
	if c.Traits != nil {
		return c.Traits
	}
	if c.Properties != nil {
		return c.Properties
	}
	return json.RawMessage("{}")
}

// users lists the userIds of calls, each once, in first-seen order.
func users(calls []tracking.Call) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(calls))
	for _, c := range calls {
		if c.UserID != "" && !seen[c.UserID] {
			seen[c.UserID] = true
			out = append(out, c.UserID)
		}
	}
	return out
}

// writeProfiles updates the users and accounts the stored calls touch: a row
// for each new user (one statement; an existing user's row is neither
// updated nor locked, so concurrent requests about the same users do not
// queue: first and last seen come from the events, and Prune folds the
// events it deletes into the row), then, in call order, identify
// traits merged into the user's, the user's account from a group call, and
// group traits merged into the account's (one pipelined batch). Traits merge
// in arrival order, key by key, as Segment's do. It returns the users whose
// row it created.
func writeProfiles(ctx context.Context, tx pgx.Tx, namespace string, calls []tracking.Call) (created map[string]bool, err error) {
	first, last := map[string]time.Time{}, map[string]time.Time{}
	ids := make([]string, 0, len(calls))
	for _, c := range calls {
		if c.UserID == "" {
			continue
		}
		f, ok := first[c.UserID]
		if !ok {
			ids = append(ids, c.UserID)
		}
		if !ok || c.Timestamp.Before(f) {
			first[c.UserID] = c.Timestamp
		}
		if l := last[c.UserID]; c.Timestamp.After(l) {
			last[c.UserID] = c.Timestamp
		}
	}
	if len(ids) > 0 {
		slices.Sort(ids) // one lock order across concurrent requests
		fs, ls := make([]time.Time, len(ids)), make([]time.Time, len(ids))
		for i, id := range ids {
			fs[i], ls[i] = first[id], last[id]
		}
		rows, err := tx.Query(ctx, upsertUsers, namespace, ids, fs, ls)
		if err != nil {
			return nil, err
		}
		created = map[string]bool{}
		var id string
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { created[id] = true; return nil }); err != nil {
			return nil, err
		}
	}
	var b pgx.Batch
	for _, c := range calls {
		switch {
		case c.Type == tracking.Identify && c.UserID != "" && string(c.Traits) != "{}":
			b.Queue(`UPDATE `+schema+`.users SET traits = traits || $3::jsonb WHERE namespace = $1 AND user_id = $2`,
				namespace, c.UserID, string(c.Traits))
		case c.Type == tracking.Group:
			if c.UserID != "" {
				b.Queue(`UPDATE `+schema+`.users SET account_id = $3 WHERE namespace = $1 AND user_id = $2`, namespace, c.UserID, c.GroupID)
			}
			b.Queue(`INSERT INTO `+schema+`.accounts (namespace, account_id, traits) VALUES ($1, $2, $3::jsonb)
				ON CONFLICT (namespace, account_id) DO UPDATE SET traits = accounts.traits || excluded.traits`,
				namespace, c.GroupID, string(c.Traits))
		}
	}
	if b.Len() == 0 {
		return created, nil
	}
	return created, tx.SendBatch(ctx, &b).Close()
}

// AccountUsers lists the users of an account: a group call that changes the
// account's traits changes their profiles.
func (s *Store) AccountUsers(ctx context.Context, namespace, accountID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id FROM `+schema+`.users WHERE namespace = $1 AND account_id = $2`, namespace, accountID)
	if err != nil {
		return nil, safe(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, safe(err)
}

// Erase deletes everything stored about one user of a namespace (the right
// to erasure): the user's events and the user's row. It returns the number
// of events deleted. Accounts are not personal and stay.
func (s *Store) Erase(ctx context.Context, namespace, userID string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM `+schema+`.events WHERE namespace = $1 AND user_id = $2`, namespace, userID)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, `DELETE FROM `+schema+`.users WHERE namespace = $1 AND user_id = $2`, namespace, userID)
		return err
	})
	return n, safe(err)
}

// Prune deletes a namespace's events timestamped before the cutoff (the
// retention), at most limit at a time so a large backlog never holds one
// long transaction; call it until it returns fewer than limit. Call FoldSeen
// first, so first and last seen stay in the users table.
func (s *Store) Prune(ctx context.Context, namespace string, before time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+schema+`.events WHERE ctid IN (
		SELECT ctid FROM `+schema+`.events WHERE namespace = $1 AND ts < $2 LIMIT $3)`, namespace, before, limit)
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", safe(err))
	}
	return tag.RowsAffected(), nil
}

// FoldSeen keeps, in each user's row, the first and last time of the events
// older than the cutoff, which Prune is about to delete: FirstSeen and
// LastSeen without event outlive the retention.
func (s *Store) FoldSeen(ctx context.Context, namespace string, before time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE `+schema+`.users u
		SET first_seen = least(u.first_seen, o.first), last_seen = greatest(u.last_seen, o.last)
		FROM (SELECT user_id, min(ts) AS first, max(ts) AS last FROM `+schema+`.events
			WHERE namespace = $1 AND ts < $2 AND user_id IS NOT NULL GROUP BY user_id) o
		WHERE u.namespace = $1 AND u.user_id = o.user_id AND (o.first < u.first_seen OR o.last > u.last_seen)`, namespace, before)
	if err != nil {
		return fmt.Errorf("keeping first and last seen: %w", safe(err))
	}
	return nil
}

// Namespaces lists the namespaces that hold events, for pruning.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT namespace FROM `+schema+`.users`)
	if err != nil {
		return nil, safe(err)
	}
	ns, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ns, safe(err)
}

// Count is the number of stored events of a namespace with a messageId.
func (s *Store) Count(ctx context.Context, namespace, messageID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.events WHERE namespace = $1 AND message_id = $2`,
		namespace, messageID).Scan(&n)
	return n, safe(err)
}

// safe keeps a server error's code and message (about the statement, not a
// stored value: the detail and where parts, which may quote one, are
// dropped) and passes other errors on.
func safe(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		if strings.HasPrefix(pg.Code, "22") || strings.HasPrefix(pg.Code, "23") {
			// Data and integrity errors may quote the offending value.
			return fmt.Errorf("PostgreSQL error %s", pg.Code)
		}
		return fmt.Errorf("PostgreSQL error %s: %s", pg.Code, pg.Message)
	}
	return err
}

// Setting reads a server setting (SHOW), e.g. synchronous_commit, for
// benchmarks that report whether commits were durable.
func (s *Store) Setting(ctx context.Context, name string, v *string) error {
	return safe(s.pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(v))
}
