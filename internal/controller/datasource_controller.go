package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/httpsrc"
	"github.com/usersuccess/persona-operator/internal/datasource"
	"github.com/usersuccess/persona-operator/internal/identity"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/syncslots"
)

const dataSourceConfigMapIndex = ".spec.configMapRefs"

// DataSourceReconciler syncs DataSources into the shared profile store.
type DataSourceReconciler struct {
	client.Client
	// APIReader reads uncached.
	APIReader client.Reader
	Store     *profile.Store
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	// MaxConcurrentSyncs bounds parallel syncs (each may hold a DB connection).
	MaxConcurrentSyncs int
	// MaxSyncsPerNamespace caps the syncs one namespace runs at once, below
	// MaxConcurrentSyncs (syncslots.PerNamespace), so that one namespace's
	// hanging sources cannot hold every worker.
	MaxSyncsPerNamespace int
	// Limits are the cluster-wide caps no spec can exceed.
	Limits datasource.Limits
	// StoreEvents, when set, receives an event each time a namespace's profiles
	// change, for the Persona controller.
	StoreEvents chan<- event.GenericEvent

	// Identities gives the client that reads a DataSource's Secrets and
	// ConfigMaps as its ServiceAccount (default: the manager acts as itself
	// unless the spec names one).
	Identities *Identities

	// Events, when set, is the event ingest that Events DataSources load
	// from; without it they stall (EventsDisabled).
	Events EventSources

	listen *listeners // LISTEN connections (notifyChannel)
	// marks holds, per DataSource, the watermark of the last sync this
	// manager applied (markedWatermark).
	marks    sync.Map
	slots    *syncslots.Slots
	sessions *httpsrc.Sessions // HTTP sources' tokens and request budgets, across syncs
	// partials holds, per DataSource, the listing a rate limit interrupted
	// (partialSync), until a later sync finishes it.
	partials sync.Map
}

// slotRetry is how soon a due sync whose namespace is at its cap of running
// syncs is tried again: not an error (no backoff), not a hot loop.
const slotRetry = 5 * time.Second

// notify tells the Persona controller that a namespace's profiles changed.
func (r *DataSourceReconciler) notify(ctx context.Context, namespace, name string) {
	if r.StoreEvents == nil {
		return
	}
	ds := &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	select {
	case r.StoreEvents <- event.GenericEvent{Object: ds}:
	case <-ctx.Done():
	}
}

// Reconcile syncs one DataSource when a sync is due, applies the result to the
// profile store unless the circuit breaker holds it back, and patches status.
func (r *DataSourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	ns := r.Store.Namespace(req.Namespace)

	var ds v1alpha1.DataSource
	if err := r.Get(ctx, req.NamespacedName, &ds); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(ctx, ns, req)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !ds.DeletionTimestamp.IsZero() {
		r.forget(ctx, ns, req)
		return ctrl.Result{}, nil
	}

	before := ds.DeepCopy()
	id, reader, err := r.Identities.Resolve(ds.Namespace, ds.Spec.ServiceAccountName)
	if s, ok := conditions.AsStalled(err); ok {
		// Nothing is read as the manager instead; a spec change re-triggers.
		r.listen.stop(req.NamespacedName)
		ds.Status.ObservedGeneration = ds.Generation
		r.configError(&ds, s)
		return ctrl.Result{}, r.patchStatus(ctx, before, &ds)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	refs := refReader{reader: r.APIReader, namespace: ds.Namespace, id: id}
	if reader != nil {
		refs.reader = reader
	}
	now := r.Clock.Now()
	_, _, loaded := ns.Loaded(ds.Name)
	refsVersion, err := r.referencesVersion(ctx, &ds, refs)
	if err != nil {
		return ctrl.Result{}, err
	}
	if ds.Spec.Load == v1alpha1.LoadNone {
		return r.notLoaded(ctx, req, before, &ds, refs, refsVersion)
	}
	sched := datasource.Plan(&ds, loaded, refsVersion, now)
	notified := r.listen.take(req.NamespacedName)
	if notified {
		sched = sched.Notified(&ds)
	}
	listening := r.ensureListener(ctx, &ds, refs)

	var syncErr error
	admitted := true
	if sched.Due {
		if admitted = r.slots.Acquire(ds.Namespace); admitted {
			log.V(1).Info("syncing", "why", sched.Why, "forced", sched.Forced)
			r.lastWatermark(&ds)
			syncErr = r.sync(ctx, ns, &ds, refs, sched.Forced, refsVersion, datasource.IncrementalMode(&ds, loaded, sched.Forced, refsVersion, now))
			r.markWatermark(req.NamespacedName, &ds)
			r.listen.wake(ds.Namespace, r.slots.Release(ds.Namespace))
			ds.Status.ReferencesVersion = refsVersion
		} else {
			log.V(1).Info("waiting for a sync slot", "namespace", ds.Namespace, "running", r.slots.Running(ds.Namespace))
			r.slots.Wait(ds.Namespace, ds.Name) // woken when a slot frees; slotRetry is the fallback
			if notified {
				r.listen.keep(req.NamespacedName) // the notification still wants its sync
			}
		}
	}
	datasource.MarkStaleness(&ds, r.Clock.Now())
	observeFreshness(&ds)
	if err := r.patchStatus(ctx, before, &ds); err != nil {
		return ctrl.Result{}, err
	}
	if syncErr != nil {
		// A transient failure: the work queue retries with exponential backoff.
		return ctrl.Result{}, syncErr
	}
	if !admitted {
		syncsWaiting.WithLabelValues(ds.Namespace).Inc()
		return ctrl.Result{RequeueAfter: slotRetry}, nil
	}
	after := r.requeueAfter(&ds)
	if !listening && (after == 0 || after > 2*time.Second) {
		after = 2 * time.Second // start the listener once the manager runs
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// forget drops everything held for a deleted DataSource.
func (r *DataSourceReconciler) forget(ctx context.Context, ns *profile.Namespace, req ctrl.Request) {
	r.listen.stop(req.NamespacedName)
	r.remove(ctx, ns, req)
	r.sessions.Forget(req.Namespace + "/" + req.Name)
	r.partials.Delete(req.NamespacedName)
	r.marks.Delete(req.NamespacedName)
	forgetDataSource(req.Namespace, req.Name)
}

// markedWatermark is the watermark a sync applied, for the DataSource's UID
// and generation it was applied for.
type markedWatermark struct {
	uid types.UID
	gen int64
	at  metav1.Time
}

// markWatermark remembers the watermark the sync just applied.
func (r *DataSourceReconciler) markWatermark(key types.NamespacedName, ds *v1alpha1.DataSource) {
	if inc := ds.Status.Incremental; inc != nil && inc.Watermark != nil {
		r.marks.Store(key, markedWatermark{uid: ds.UID, gen: ds.Generation, at: *inc.Watermark})
	}
}

// lastWatermark puts the watermark of the last sync this manager applied in
// the status the next sync starts from. When the database's NOTIFY wakes a
// sync right after the previous one, the informer cache may not show that
// sync's status yet, and an incremental sync from the older watermark re-reads
// every row changed since: at worst a whole table loaded in one transaction,
// whose rows share one updated_at. Only for the same object and spec.
func (r *DataSourceReconciler) lastWatermark(ds *v1alpha1.DataSource) {
	v, ok := r.marks.Load(types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name})
	inc := ds.Status.Incremental
	if !ok || inc == nil || inc.LastFullSyncTime == nil {
		return
	}
	if m := v.(markedWatermark); m.uid == ds.UID && m.gen == ds.Generation {
		at := m.at
		inc.Watermark = &at
	}
}

func (r *DataSourceReconciler) remove(ctx context.Context, ns *profile.Namespace, req ctrl.Request) {
	r.unregisterEvents(req.Namespace, req.Name)
	if _, _, loaded := ns.Loaded(req.Name); loaded {
		ns.Remove(req.Name)
		r.notify(ctx, req.Namespace, req.Name)
	}
}

// emptyEventsFirstLoad: an Events source's first load may be empty (no event
// sent yet) and is applied anyway, so the events that arrive next apply as
// deltas. The breaker's EmptyResult guards exports that fail silently; the
// event store is the operator's own. A source that held data keeps the
// breaker (a wiped database does not empty the profiles).
func emptyEventsFirstLoad(ds *v1alpha1.DataSource, baseline int64) bool {
	return ds.Spec.Type == v1alpha1.DataSourceEvents && baseline == 0
}

// unregisterEvents forgets a source that is no longer an Events DataSource.
func (r *DataSourceReconciler) unregisterEvents(namespace, name string) {
	if r.Events != nil {
		r.Events.Unregister(namespace, name)
	}
}

// applyFull applies a full sync. An Inline or ConfigMap source is edited by
// hand a few rows at a time: only the rows that differ from the stored data
// are applied (the result is the same as replacing it whole).
func (r *DataSourceReconciler) applyFull(ns *profile.Namespace, ds *v1alpha1.DataSource, data *profile.SourceData) {
	if ds.Spec.Type == v1alpha1.DataSourceInline {
		if d := profile.Diff(ns.Source(ds.Name), data); d != nil && ns.ApplyDelta(d).Applied {
			return
		}
	}
	ns.Apply(data)
}

// sync runs one sync and records it in ds.Status. It returns an error only for
// transient failures worth a backoff retry.
func (r *DataSourceReconciler) sync(ctx context.Context, ns *profile.Namespace, ds *v1alpha1.DataSource, refs refReader,
	forced bool, refsVersion string, mode datasource.Mode) error {
	newSpec := ds.Status.ObservedGeneration != ds.Generation
	ds.Status.ObservedGeneration = ds.Generation
	mapper, err := attr.NewMapper(&ds.Spec)
	if err != nil {
		r.configError(ds, &conditions.Stalled{Reason: v1alpha1.ReasonInvalidAttributes, Message: err.Error()})
		return nil
	}
	resume := r.partialFor(ds, refsVersion, mode)
	// The source is built from a copy lowered to the cluster's caps.
	limited := ds.DeepCopy()
	if lowered := r.Limits.Apply(&limited.Spec); len(lowered) > 0 && newSpec {
		// Once per spec generation, not on every sync.
		warn(r.Recorder, ds, v1alpha1.ReasonLimitExceeded, "Sync",
			"the spec asks for more than this cluster allows; lowered "+strings.Join(lowered, " and ")+" (the manager's --max-sync-timeout and --max-response-bytes)")
	}
	var src connector.Source
	if ds.Spec.Type == v1alpha1.DataSourceEvents {
		src, err = newEvents(ctx, refs, r.Events, limited)
		switch {
		case err == nil:
			// Deltas of the source wait until this full load is applied (or not).
			defer r.Events.Loaded(ds.Namespace, ds.Name)
		case conditions.IsStalled(err):
			// A write key that is gone or refused stops being accepted.
			r.unregisterEvents(ds.Namespace, ds.Name)
		}
	} else {
		r.unregisterEvents(ds.Namespace, ds.Name)
		src, err = newSource(ctx, refs, limited, mode, r.sessions, resume.position())
	}
	if s, ok := conditions.AsStalled(err); ok {
		r.configError(ds, s)
		return nil
	}
	if err != nil {
		return err
	}

	// The breaker compares with what the store holds: the cached status may
	// not show the last sync's count yet (a spec edited right after a sync).
	baseline := ds.Status.RecordsAccepted
	if _, records, loaded := ns.Loaded(ds.Name); loaded {
		baseline = records
	}
	syncCtx, cancel := context.WithTimeout(ctx, limited.Spec.SyncTimeout())
	defer cancel()
	out := datasource.Run(syncCtx, datasource.Request{
		Name: ds.Name, Priority: ds.Spec.Priority, Source: src, Mapper: mapper,
		Baseline: baseline, MaxShrinkPercent: ds.Spec.MaxShrinkPercent,
		Forced: forced || emptyEventsFirstLoad(ds, baseline), Now: r.Clock.Now, Incremental: datasource.IncrementalRead(&ds.Spec, mode),
		Previous:   ns.Source(ds.Name),
		MaxRecords: r.Limits.MaxRecords,
		Resume:     resume.partial(),
	})
	r.keepPartial(ds, refsVersion, mode, out.Partial)
	if out.FetchErr == nil && out.Decision.Apply {
		known, added := ns.UsersAdded(out.Data, out.Delta)
		out.FetchErr = datasource.CheckUsers(known, added, r.Limits.MaxUsers)
	}
	applied := out.FetchErr == nil && out.Decision.Apply
	unchanged := false
	switch {
	case applied && out.Delta != nil:
		res := ns.ApplyDelta(out.Delta)
		if !res.Applied {
			// The store lost the source since the mode was chosen (it was
			// removed and re-created): load it in full on the retry.
			return fmt.Errorf("the profile store no longer holds %s/%s: retrying with a full load", ds.Namespace, ds.Name)
		}
		out.Applied = &res
		unchanged = res.Upserted+res.Deleted == 0
		if !unchanged {
			r.notify(ctx, ds.Namespace, ds.Name)
		}
	case applied:
		// Same content as what the store holds: leave the store (and its
		// generation) alone, so personas are not re-evaluated for nothing.
		digest, _, loaded := ns.Loaded(ds.Name)
		unchanged = loaded && digest == out.Data.Digest
		if !unchanged {
			r.applyFull(ns, ds, out.Data)
			r.notify(ctx, ds.Namespace, ds.Name)
		}
	}
	datasource.Record(ds, out, applied, r.Clock.Now())
	if s, ok := conditions.AsStalled(out.FetchErr); ok {
		stall(r.Recorder, ds, &ds.Status.Conditions, s, "Sync", datasource.Keeping(&ds.Status))
	}
	if applied {
		datasource.MarkConflicts(ds, ns.Conflicts()[ds.Name])
	}
	observeSync(ds, out, applied, unchanged)
	r.event(ds, out, applied)
	if out.FetchErr != nil && !conditions.IsStalled(out.FetchErr) {
		return fmt.Errorf("sync failed: %w", out.FetchErr)
	}
	return nil
}

// configError records a problem found before fetching (a missing Secret, an
// invalid mapping): the user must fix it.
func (r *DataSourceReconciler) configError(ds *v1alpha1.DataSource, s *conditions.Stalled) {
	datasource.MarkAttempt(ds, r.Clock.Now())
	stall(r.Recorder, ds, &ds.Status.Conditions, s, "Sync", datasource.Keeping(&ds.Status))
	syncResults.WithLabelValues(ds.Namespace, ds.Name, "config_error").Inc()
}

// event emits one Event per sync that did not simply succeed, and one when a
// sync applied changed data; routine no-change syncs stay quiet.
func (r *DataSourceReconciler) event(ds *v1alpha1.DataSource, out datasource.Outcome, applied bool) {
	switch {
	case conditions.IsStalled(out.FetchErr):
		// stall emitted it.
	case out.FetchErr != nil:
		warn(r.Recorder, ds, v1alpha1.ReasonSourceDegraded, "Sync", "sync failed: "+out.FetchErr.Error())
	case !applied:
		warn(r.Recorder, ds, out.Decision.Reason, "Sync", out.Decision.Message)
	}
	if bad, msg := datasource.Rejected(&ds.Spec, out); bad && out.FetchErr == nil {
		warn(r.Recorder, ds, v1alpha1.ReasonRecordsRejected, "Sync", msg)
	}
}

// patchStatus writes status only when it changed, so a reconcile with nothing to
// do makes no API write.
func (r *DataSourceReconciler) patchStatus(ctx context.Context, before, ds *v1alpha1.DataSource) error {
	return patchStatus(ctx, r.Client, before, ds, &before.Status, &ds.Status, false)
}

// requeueAfter is the earlier of the next periodic sync and the moment the data
// turns stale.
func (r *DataSourceReconciler) requeueAfter(ds *v1alpha1.DataSource) time.Duration {
	now := r.Clock.Now()
	next := datasource.Plan(ds, true, ds.Status.ReferencesVersion, now).Next
	if stale, _, at := datasource.Staleness(ds, now); !stale && !at.IsZero() && (next.IsZero() || at.Before(next)) {
		next = at
	}
	if d, ok := referenceRetry(ds, now); ok && (next.IsZero() || now.Add(d).Before(next)) {
		next = now.Add(d)
	}
	if next.IsZero() && !ds.Spec.Suspend && ds.Status.LastSyncTime != nil {
		// A stalled source is retried at its interval too: a Secret or table
		// that appears later is picked up without a spec change.
		next = ds.Status.LastSyncTime.Add(ds.Spec.SyncInterval())
	}
	if next.IsZero() {
		return 0
	}
	if d := next.Sub(now); d > time.Second {
		return d
	}
	return time.Second
}

// referencesVersion fingerprints the resourceVersions of the Secrets and
// ConfigMaps a DataSource references, so that a change to one triggers a sync.
// They are read as the DataSource's identity, metadata only, on each
// reconcile, so a Role granted later changes the fingerprint too (from
// @forbidden). A ConfigMap change also triggers the reconcile (the manager
// watches ConfigMap metadata); the manager may not list or watch Secrets, so
// a changed Secret is noticed at the next reconcile (the next sync, or sooner
// while the source is stalled on it: referenceRetry).
func (r *DataSourceReconciler) referencesVersion(ctx context.Context, ds *v1alpha1.DataSource, refs refReader) (string, error) {
	secrets, configMaps := indexRefs(ds)
	if len(secrets)+len(configMaps) == 0 {
		return "", nil
	}
	var parts []string
	add := func(kind string, names []string) error {
		for _, name := range names {
			m := &metav1.PartialObjectMetadata{}
			m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
			err := refs.reader.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: name}, m)
			switch {
			case apierrors.IsNotFound(err):
				parts = append(parts, kind+"/"+name+"@missing")
			case apierrors.IsForbidden(err):
				// The sync reports it (AccessDenied); a grant changes the version.
				parts = append(parts, kind+"/"+name+"@forbidden")
			case err != nil:
				return err
			default:
				parts = append(parts, kind+"/"+name+"@"+m.ResourceVersion)
			}
		}
		return nil
	}
	if err := add("Secret", secrets); err != nil {
		return "", err
	}
	if err := add("ConfigMap", configMaps); err != nil {
		return "", err
	}
	sort.Strings(parts)
	sum := sha256.Sum256([]byte(strings.Join(parts, ",")))
	return hex.EncodeToString(sum[:8]), nil
}

// SetupWithManager registers the controller: DataSource spec and annotation
// changes, and changes to the ConfigMaps they reference, trigger a reconcile;
// status-only updates (our own writes) do not. Secrets are not watched: that
// takes list and watch on every Secret of the cluster (see referencesVersion).
func (r *DataSourceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	ctx := context.Background()
	if r.Identities == nil {
		r.Identities = NewIdentities(mgr, identity.Policy{})
	}
	if err := idx.IndexField(ctx, &v1alpha1.DataSource{}, dataSourceConfigMapIndex, func(o client.Object) []string {
		_, c := indexRefs(o.(*v1alpha1.DataSource))
		return c
	}); err != nil {
		return err
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	r.listen = newListeners()
	r.sessions = httpsrc.NewSessions()
	if err := mgr.Add(r.listen); err != nil {
		return err
	}
	workers := r.MaxConcurrentSyncs
	if workers <= 0 {
		workers = 4
	}
	r.slots = syncslots.New(syncslots.PerNamespace(r.MaxSyncsPerNamespace, workers))
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.DataSource{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.referencing(dataSourceConfigMapIndex))).
		WatchesRawSource(source.Channel(r.listen.events, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: workers,
			// Failed syncs back off from 1s to 5m: a failing source is not hammered.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](time.Second, 5*time.Minute),
		}).
		Named("datasource").
		Complete(r)
}

// referencing maps a ConfigMap to the DataSources of its namespace that
// reference it.
func (r *DataSourceReconciler) referencing(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.DataSourceList
		if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}); err != nil {
			logf.FromContext(ctx).Error(err, "listing DataSources for a reference", "index", index)
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, ds := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}})
		}
		return reqs
	}
}

// partialSync is a listing a wait longer than spec.timeout interrupted
// (datasource.Partial), for the DataSource UID, generation, references and
// sync mode it was read with: a later sync with all four the same goes on
// from the page it stopped at; any other starts over.
type partialSync struct {
	uid   types.UID
	gen   int64
	refs  string
	delta bool
	since time.Time
	p     *datasource.Partial
}

func (ps *partialSync) position() any {
	if ps == nil {
		return nil
	}
	return ps.p.Position
}

func (ps *partialSync) partial() *datasource.Partial {
	if ps == nil {
		return nil
	}
	return ps.p
}

// partialFor takes the DataSource's interrupted listing if this sync may
// continue it.
func (r *DataSourceReconciler) partialFor(ds *v1alpha1.DataSource, refs string, mode datasource.Mode) *partialSync {
	v, ok := r.partials.LoadAndDelete(types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name})
	if !ok {
		return nil
	}
	ps := v.(*partialSync)
	if ps.uid != ds.UID || ps.gen != ds.Generation || ps.refs != refs || ps.delta != mode.Delta || !ps.since.Equal(mode.Since) {
		return nil
	}
	return ps
}

// keepPartial remembers an interrupted listing for the next sync.
func (r *DataSourceReconciler) keepPartial(ds *v1alpha1.DataSource, refs string, mode datasource.Mode, p *datasource.Partial) {
	if p == nil {
		return
	}
	r.partials.Store(types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name},
		&partialSync{uid: ds.UID, gen: ds.Generation, refs: refs, delta: mode.Delta, since: mode.Since, p: p})
}
