package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Select runs the configured query (cfg.Query, with args) in a read-only
// transaction whose statements stop after timeout (statement_timeout) and
// visits its rows as they arrive: a persona evaluated in the database
// streams its members through it, never holding the result. An error of
// visit stops the query and is returned as it is; others are sanitized as
// Fetch's.
func Select(ctx context.Context, cfg Config, args []any, timeout time.Duration, visit func(pgx.Rows) error, opts ...Option) error {
	s := New(cfg, opts...).(*source)
	pcfg, err := parseDSN(s.cfg.DSN, s.policy)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tx, end, err := begin(ctx, pcfg)
	if err != nil {
		return err
	}
	defer end()
	settings := maps.Clone(cfg.Settings)
	if timeout > 0 {
		if settings == nil {
			settings = map[string]string{}
		}
		settings["statement_timeout"] = fmt.Sprint(max(timeout.Milliseconds(), 1))
	}
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		if _, err := tx.Exec(ctx, "SELECT set_config($1, $2, true)", name, settings[name]); err != nil {
			return classify(ctx, "setting "+name, err)
		}
	}
	rows, err := tx.Query(ctx, cfg.Query, args...)
	if err != nil {
		return classify(ctx, "running the query", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := visit(rows); err != nil {
			cancel() // before the deferred rows.Close, which would read every remaining row
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return classify(ctx, "reading rows", err)
	}
	return nil
}
