package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersuccess/persona-operator/internal/connector/netguard"
)

// Listen holds one connection that LISTENs on channel and calls notify for
// each NOTIFY, until ctx is done. A lost connection is re-established with
// backoff (1 s doubling to 1 min), and notify is called once after each
// reconnection, since a notification may have been missed meanwhile.
// notify may block: notifications queue up in the connection meanwhile.
//
// The DSN is checked and the connection guarded as a sync's (parseDSN).
// Errors are not returned or logged (pgx's connect errors embed the DSN): a
// listener that cannot connect costs only the immediacy of syncs, which still
// run at their interval and report connection problems themselves.
func Listen(ctx context.Context, dsn, channel string, notify func(context.Context)) {
	backoff := time.Second
	for first := true; ctx.Err() == nil; first = false {
		if connected := listenOnce(ctx, dsn, channel, notify, !first); connected {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// listenOnce runs one connection; it reports whether LISTEN succeeded.
func listenOnce(ctx context.Context, dsn, channel string, notify func(context.Context), reconnected bool) bool {
	cfg, err := parseDSN(dsn, netguard.Sources())
	if err != nil {
		return false
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false
	}
	defer cleanup(ctx, conn.Close)
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return false
	}
	if reconnected {
		notify(ctx)
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true
		}
		notify(ctx)
	}
}
