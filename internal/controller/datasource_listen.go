package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/connector/postgres"
)

// listeners holds one LISTEN connection per DataSource with
// spec.postgres.incremental.notifyChannel: bounded by the number of such
// DataSources, each restarted only when its DSN or channel changes.
type listeners struct {
	mu      sync.Mutex
	ctx     context.Context // the manager's; nil until it runs
	running map[types.NamespacedName]*listener
	pending map[types.NamespacedName]bool // notified since the last reconcile took it
	events  chan event.GenericEvent
}

type listener struct {
	key    string // fingerprint of DSN and channel; never the DSN itself
	cancel context.CancelFunc
}

func newListeners() *listeners {
	return &listeners{running: map[types.NamespacedName]*listener{}, pending: map[types.NamespacedName]bool{},
		events: make(chan event.GenericEvent, 64)}
}

// Start runs with the manager: listeners live as long as it does.
func (l *listeners) Start(ctx context.Context) error {
	l.mu.Lock()
	l.ctx = ctx
	l.mu.Unlock()
	<-ctx.Done()
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, ln := range l.running {
		ln.cancel()
		delete(l.running, name)
	}
	return nil
}

// ensure makes the DataSource's listener match dsn and channel (empty channel:
// none). It reports false when the manager is not running yet.
func (l *listeners) ensure(name types.NamespacedName, dsn, channel string) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.running[name]
	if channel == "" {
		if cur != nil {
			cur.cancel()
			delete(l.running, name)
		}
		return true
	}
	sum := sha256.Sum256([]byte(dsn + "\x00" + channel))
	key := hex.EncodeToString(sum[:])
	if cur != nil && cur.key == key {
		return true
	}
	if l.ctx == nil {
		return false
	}
	if cur != nil {
		cur.cancel()
	}
	ctx, cancel := context.WithCancel(l.ctx)
	l.running[name] = &listener{key: key, cancel: cancel}
	go postgres.Listen(ctx, dsn, channel, func(ctx context.Context) { l.notified(ctx, name) })
	return true
}

// stop ends a deleted DataSource's listener.
func (l *listeners) stop(name types.NamespacedName) { l.ensure(name, "", "") }

// notified marks the DataSource as due and enqueues it.
func (l *listeners) notified(ctx context.Context, name types.NamespacedName) {
	l.mu.Lock()
	l.pending[name] = true
	l.mu.Unlock()
	select {
	case l.events <- event.GenericEvent{Object: dataSourceRef(name)}:
	case <-ctx.Done():
	}
}

// dataSourceRef is the object an enqueue event names: only the name counts.
func dataSourceRef(name types.NamespacedName) *v1alpha1.DataSource {
	ds := &v1alpha1.DataSource{}
	ds.Namespace, ds.Name = name.Namespace, name.Name
	return ds
}

// wake enqueues DataSources of a namespace (those waiting for a sync slot
// just freed). It never blocks: a full channel leaves them to their
// requeue.
func (l *listeners) wake(namespace string, names []string) {
	if l == nil {
		return
	}
	for _, name := range names {
		select {
		case l.events <- event.GenericEvent{Object: dataSourceRef(types.NamespacedName{Namespace: namespace, Name: name})}:
		default:
		}
	}
}

// take reports whether the database notified since the last call.
func (l *listeners) take(name types.NamespacedName) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ok := l.pending[name]
	delete(l.pending, name)
	return ok
}

// keep marks a notification taken by take as still pending (its sync could
// not start yet).
func (l *listeners) keep(name types.NamespacedName) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending[name] = true
}

// ensureListener starts, restarts or stops the DataSource's LISTEN connection
// to match its spec. It reports false when it must be retried shortly (the
// manager's runnables are still starting).
func (r *DataSourceReconciler) ensureListener(ctx context.Context, ds *v1alpha1.DataSource, refs refReader) bool {
	name := types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}
	pg := ds.Spec.Postgres
	if ds.Spec.Type != v1alpha1.DataSourcePostgreSQL || pg == nil || pg.Incremental == nil || pg.Incremental.NotifyChannel == "" || ds.Spec.Suspend {
		return r.listen.ensure(name, "", "")
	}
	dsn, err := refs.secretKey(ctx, pg.DSNSecretRef.Name, pg.DSNSecretRef.Key, "spec.postgres.dsnSecretRef")
	if err != nil {
		// The sync reports the Secret problem; a retry picks up a fix.
		return r.listen.ensure(name, "", "")
	}
	return r.listen.ensure(name, string(dsn), pg.Incremental.NotifyChannel)
}
