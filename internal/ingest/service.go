// Package ingest is the manager's Segment-compatible event endpoint and what
// turns stored events into profile changes: write keys per namespace,
// requests validated (internal/tracking) and committed (internal/eventstore)
// before the 200, then only the affected users' rows re-computed and applied
// to the profile store as a delta, so only those users are re-evaluated.
// Windowed aggregates are re-computed at their next edge, when an old event
// leaves the window, so membership changes at that instant and not at the
// next event or sync.
//
// It does no Kubernetes I/O: the DataSource controller registers each Events
// DataSource with its write key (read as the DataSource's identity) and loads
// it in full through Source, as it syncs any source.
package ingest

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/eventstore"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/tracking"
)

// Service holds the write keys, the Events sources of every namespace and
// the users whose profiles wait to be re-computed.
type Service struct {
	events   *eventstore.Store
	profiles *profile.Store
	notify   func(namespace, name string)
	now      func() time.Time

	mu       sync.Mutex
	keys     map[[32]byte]string             // sha256 of a write key → namespace
	sources  map[string]map[string]*source   // namespace → DataSource name → source
	dirty    map[string]map[string]struct{}  // namespace → users to re-compute
	accounts map[string]map[string]struct{}  // namespace → accounts whose users to re-compute
	stored   map[string][]tracking.Call      // namespace → stored calls not yet added to the states
	created  map[string][]string             // namespace → users new in the store, among stored's
	erased   map[string][]string             // namespace → users whose states to forget
	pruned   map[string]bool                 // namespace → every state to forget
	edges    edgeQueue                       // when windowed aggregates change next
	edgeAt   map[string]map[string]time.Time // namespace → user → its queued edge
	nsLock   map[string]*sync.Mutex          // serializes a namespace's loads and deltas
	since    map[string]time.Time            // namespace → when its oldest dirty user was marked
	started  time.Time                       // when Run started (KeyGrace)
	keyGrace time.Duration
	wake     chan struct{}
}

// source is one registered Events DataSource.
type source struct {
	name      string
	key       [32]byte
	aggs      []eventstore.Aggregate
	mapper    *attr.Mapper
	retention time.Duration
	// states are the users' aggregate states, kept across registrations
	// with the same aggregates.
	states *userStates
	// loading is true from a full load's start until the controller has
	// applied it (Loaded): deltas wait, or an older full load would overwrite
	// a newer delta.
	loading bool
}

// New returns a service over an event store and the profile store. notify
// tells the Persona controller that a source's profiles changed.
func New(events *eventstore.Store, profiles *profile.Store, notify func(namespace, name string)) *Service {
	return &Service{
		events: events, profiles: profiles, notify: notify, now: time.Now,
		keys: map[[32]byte]string{}, sources: map[string]map[string]*source{}, dirty: map[string]map[string]struct{}{},
		accounts: map[string]map[string]struct{}{}, stored: map[string][]tracking.Call{}, created: map[string][]string{}, erased: map[string][]string{},
		pruned: map[string]bool{}, edgeAt: map[string]map[string]time.Time{}, nsLock: map[string]*sync.Mutex{},
		since: map[string]time.Time{}, keyGrace: KeyGrace,
		wake: make(chan struct{}, 1),
	}
}

// KeyGrace is how long after the service starts an unknown write key is
// answered 503 (retry) rather than 401: the time the DataSource controller
// takes to register every Events source again after a restart.
const KeyGrace = 2 * time.Minute

// starting reports whether the service is within KeyGrace of its start.
func (s *Service) starting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.started.IsZero() && time.Since(s.started) < s.keyGrace
}

// SetKeyGrace replaces KeyGrace (tests).
func (s *Service) SetKeyGrace(d time.Duration) { s.mu.Lock(); s.keyGrace = d; s.mu.Unlock() }

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

func hashKey(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// Register records (or updates) an Events DataSource and its write key and
// returns the connector that loads it in full. A write key already used by
// another namespace is refused (Stalled, WriteKeyConflict): a key names one
// namespace, so a namespace's events never reach another's profiles.
func (s *Service) Register(namespace string, ds *v1alpha1.DataSource, writeKey string) (connector.Source, error) {
	if writeKey == "" {
		return nil, conditions.Stalledf(v1alpha1.ReasonInvalidSpec, "spec.events.writeKeySecretRef: the write key is empty")
	}
	aggs, err := eventstore.Compile(ds.Spec.Events.Aggregates)
	if err != nil {
		return nil, conditions.Stalledf(v1alpha1.ReasonInvalidAttributes, "%s", err.Error())
	}
	mapper, err := attr.NewMapper(&ds.Spec)
	if err != nil {
		return nil, conditions.Stalledf(v1alpha1.ReasonInvalidAttributes, "%s", err.Error())
	}
	h := hashKey(writeKey)
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner, ok := s.keys[h]; ok && owner != namespace {
		return nil, conditions.Stalledf(v1alpha1.ReasonWriteKeyConflict,
			"spec.events.writeKeySecretRef: this write key is already another namespace's; give each namespace its own")
	}
	byName := s.sources[namespace]
	if byName == nil {
		byName = map[string]*source{}
		s.sources[namespace] = byName
		s.nsLock[namespace] = &sync.Mutex{}
	}
	old := byName[ds.Name]
	states := newUserStates(aggs)
	if old != nil && slices.Equal(old.aggs, aggs) {
		states = old.states // a periodic sync, or another field changed: the states still hold
	}
	// A load in progress under the old registration still holds deltas back.
	byName[ds.Name] = &source{name: ds.Name, key: h, aggs: aggs, mapper: mapper, retention: ds.Spec.Events.RetentionPeriod(),
		loading: old != nil && old.loading, states: states}
	s.keys[h] = namespace
	if old != nil && old.key != h {
		s.forgetKey(old.key) // after the replacement: forgetKey looks for users of the key
	}
	return &loader{s: s, namespace: namespace, name: ds.Name}, nil
}

// forgetKey drops a write key no source uses any more; s.mu is held.
func (s *Service) forgetKey(h [32]byte) {
	for _, byName := range s.sources {
		for _, src := range byName {
			if src.key == h {
				return
			}
		}
	}
	delete(s.keys, h)
}

// Unregister forgets a deleted (or no longer Events) DataSource. Its events
// stay stored: another source of the namespace may read them.
func (s *Service) Unregister(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.sources[namespace][name]
	if src == nil {
		return
	}
	delete(s.sources[namespace], name)
	s.forgetKey(src.key)
}

// Loaded says the controller is done with a full load of the source (applied
// or not): deltas for it may go on.
func (s *Service) Loaded(namespace, name string) {
	s.mu.Lock()
	if src := s.sources[namespace][name]; src != nil {
		src.loading = false
	}
	s.mu.Unlock()
	s.poke()
}

// namespaceOf is the namespace a write key belongs to.
func (s *Service) namespaceOf(writeKey string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns, ok := s.keys[hashKey(writeKey)]
	return ns, ok
}

// written queues what a request stored: its users' aggregates add its calls,
// and its users and accounts are re-computed.
func (s *Service) written(namespace string, w eventstore.Written, accounts []string) {
	s.mu.Lock()
	s.stored[namespace] = append(s.stored[namespace], w.Calls...)
	s.created[namespace] = append(s.created[namespace], w.NewUsers...)
	s.mu.Unlock()
	s.markDirty(namespace, w.Users, accounts)
}

// markDirty queues users (and accounts, whose users follow) for re-computing.
func (s *Service) markDirty(namespace string, users, accounts []string) {
	if len(users)+len(accounts) == 0 {
		return
	}
	s.mu.Lock()
	add := func(m map[string]map[string]struct{}, keys []string) {
		set := m[namespace]
		if set == nil {
			set = map[string]struct{}{}
			m[namespace] = set
		}
		for _, k := range keys {
			set[k] = struct{}{}
		}
	}
	add(s.dirty, users)
	add(s.accounts, accounts)
	if _, ok := s.since[namespace]; !ok {
		s.since[namespace] = time.Now()
	}
	s.mu.Unlock()
	s.poke()
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Erase deletes one user's events and profile in a namespace (the right to
// erasure): from the event store, then from every Events source's data in
// the profile store.
func (s *Service) Erase(ctx context.Context, namespace, userID string) (int64, error) {
	n, err := s.events.Erase(ctx, namespace, userID)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.erased[namespace] = append(s.erased[namespace], userID)
	s.mu.Unlock()
	s.markDirty(namespace, []string{userID}, nil)
	return n, nil
}

// loader is the connector of an Events DataSource's full load: one record
// per user of the namespace, from the event store at the time of the load.
type loader struct {
	s               *Service
	namespace, name string
}

// Fetch reads every profile of the namespace. Deltas of the source wait from
// here until Loaded.
func (l *loader) Fetch(ctx context.Context, visit connector.Visitor) error {
	s := l.s
	s.mu.Lock()
	src := s.sources[l.namespace][l.name]
	lock := s.nsLock[l.namespace]
	if src != nil {
		src.loading = true
	}
	s.mu.Unlock()
	if src == nil {
		return fmt.Errorf("the Events source %s/%s is not registered", l.namespace, l.name)
	}
	lock.Lock()
	defer lock.Unlock()
	var num int64
	var edges []edge
	err := s.events.Profiles(ctx, l.namespace, src.aggs, nil, s.now(), func(p *eventstore.Profile) error {
		num++
		if !p.Next.IsZero() {
			edges = append(edges, edge{namespace: l.namespace, user: p.UserID, at: p.Next})
		}
		return visit(p.Record(num), nil)
	})
	if err != nil {
		return err
	}
	s.queueEdges(edges)
	return nil
}

// Run re-computes dirty users and due edges until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	s.started = time.Now()
	s.mu.Unlock()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.dueEdges()
		for _, ns := range s.namespacesWithWork() {
			if err := s.flush(ctx, ns); err != nil && ctx.Err() == nil {
				// The users stay dirty: the next wake-up or the next second retries.
				s.retryLater(ctx)
			}
		}
		timer.Reset(s.untilNextEdge())
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-timer.C:
		}
	}
}

func (s *Service) retryLater(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
}

func (s *Service) namespacesWithWork() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.dirty)+len(s.accounts))
	for ns, set := range s.dirty {
		if len(set) > 0 || len(s.accounts[ns]) > 0 {
			out = append(out, ns)
		}
	}
	for ns, set := range s.accounts {
		if len(set) > 0 && len(s.dirty[ns]) == 0 {
			out = append(out, ns)
		}
	}
	return out
}

// flush re-computes a namespace's dirty users for each of its sources and
// applies the changes as one delta per source. A namespace with a full load
// in progress keeps its dirty users for after it.
func (s *Service) flush(ctx context.Context, namespace string) error {
	s.mu.Lock()
	srcs := make([]*source, 0, len(s.sources[namespace]))
	for _, src := range s.sources[namespace] {
		if src.loading {
			s.mu.Unlock()
			return nil
		}
		srcs = append(srcs, src)
	}
	users, accounts, since := s.dirty[namespace], s.accounts[namespace], s.since[namespace]
	written, created, erased, pruned := s.stored[namespace], s.created[namespace], s.erased[namespace], s.pruned[namespace]
	delete(s.dirty, namespace)
	delete(s.accounts, namespace)
	delete(s.since, namespace)
	delete(s.stored, namespace)
	delete(s.created, namespace)
	delete(s.erased, namespace)
	delete(s.pruned, namespace)
	lock := s.nsLock[namespace]
	s.mu.Unlock()
	if len(srcs) == 0 {
		return nil // no Events source: the events are stored, nothing to show
	}
	lock.Lock()
	defer lock.Unlock()
	now := s.now()
	for _, src := range srcs {
		// Before the next store read: it sees what these calls stored.
		if pruned {
			src.states.forgetAll()
		}
		src.states.bound()
		src.states.forget(erased...)
		src.states.create(created)
		src.states.add(written, now)
	}
	ids := make([]string, 0, len(users))
	for u := range users {
		ids = append(ids, u)
	}
	for a := range accounts {
		more, err := s.events.AccountUsers(ctx, namespace, a)
		if err != nil {
			s.markDirty(namespace, ids, keys(accounts))
			return err
		}
		ids = append(ids, more...)
	}
	for _, src := range srcs {
		if err := s.apply(ctx, namespace, src, ids); err != nil {
			s.markDirty(namespace, ids, nil)
			return err
		}
	}
	applyLag.Observe(time.Since(since).Seconds())
	return nil
}

// apply re-computes users of one source from their aggregate states (read
// from the store for users without one) and their rows, and applies them as
// a delta: a user the store no longer has (erased) is deleted from the
// source.
func (s *Service) apply(ctx context.Context, namespace string, src *source, users []string) error {
	now := s.now()
	if err := src.states.load(ctx, s.events, namespace, users, now); err != nil {
		return err
	}
	db := profile.NewDeltaBuilder(src.name, src.mapper)
	seen := make(map[string]bool, len(users))
	var edges []edge
	var num int64
	err := s.events.Users(ctx, namespace, users, func(r *eventstore.UserRow) error {
		num++
		seen[r.UserID] = true
		state := src.states.get(r.UserID)
		if state == nil {
			return nil // load gave every listed user a state; never here
		}
		p := r.Profile(state, now)
		if !p.Next.IsZero() {
			edges = append(edges, edge{namespace: namespace, user: p.UserID, at: p.Next})
		}
		m, err := src.mapper.Map(p.Record(num))
		if err != nil {
			return nil // a profile whose traits do not convert keeps its last row; the full sync reports it
		}
		db.Upsert(m)
		return nil
	})
	if err != nil {
		return err
	}
	for _, u := range users {
		if !seen[u] {
			db.Delete(attr.Mapped{User: &attr.Row{Key: u}})
			src.states.forget(u)
		}
	}
	s.queueEdges(edges)
	res := s.profiles.Namespace(namespace).ApplyDelta(db.Finish())
	if res.Applied && res.Upserted+res.Deleted > 0 && s.notify != nil {
		s.notify(namespace, src.name)
	}
	return nil
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// NextChange is the next instant a windowed aggregate of the namespace may
// change as time passes (zero: none known). The service re-computes the
// user then itself; this is for whoever wants to know when.
func (s *Service) NextChange(namespace string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	for _, at := range s.edgeAt[namespace] {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

// edge is when one user's aggregates may change next.
type edge struct {
	namespace, user string
	at              time.Time
}

type edgeQueue []edge

func (q edgeQueue) Len() int           { return len(q) }
func (q edgeQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q edgeQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *edgeQueue) Push(x any)        { *q = append(*q, x.(edge)) }
func (q *edgeQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// queueEdges records each user's next edge, replacing an earlier record; a
// replaced entry stays in the heap and is skipped when it comes up.
func (s *Service) queueEdges(edges []edge) {
	if len(edges) == 0 {
		return
	}
	s.mu.Lock()
	for _, e := range edges {
		at := s.edgeAt[e.namespace]
		if at == nil {
			at = map[string]time.Time{}
			s.edgeAt[e.namespace] = at
		}
		if prev, ok := at[e.user]; ok && prev.Equal(e.at) {
			continue
		}
		at[e.user] = e.at
		heap.Push(&s.edges, e)
	}
	s.mu.Unlock()
	s.poke()
}

// dueEdges marks the users whose edge has come dirty.
func (s *Service) dueEdges() {
	now := s.now()
	due := map[string][]string{}
	s.mu.Lock()
	for len(s.edges) > 0 && !s.edges[0].at.After(now) {
		e := heap.Pop(&s.edges).(edge)
		if at, ok := s.edgeAt[e.namespace][e.user]; ok && at.Equal(e.at) {
			delete(s.edgeAt[e.namespace], e.user)
			due[e.namespace] = append(due[e.namespace], e.user)
		}
	}
	s.mu.Unlock()
	for ns, users := range due {
		s.markDirty(ns, users, nil)
	}
}

// untilNextEdge is how long to sleep: until the earliest edge (at most an
// hour; a new event wakes the loop anyway).
func (s *Service) untilNextEdge() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.edges) == 0 {
		return time.Hour
	}
	d := time.Until(s.edges[0].at)
	if s.now != nil {
		d = s.edges[0].at.Sub(s.now())
	}
	return min(max(d, time.Millisecond), time.Hour)
}
