package datasource

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// Schedule says whether to sync now, and otherwise when.
type Schedule struct {
	Due bool
	// Forced: a new force-apply annotation value asks to bypass the breaker.
	Forced bool
	// Why is a short reason for logs.
	Why string
	// Next is when the next periodic sync is due (zero: none, e.g. suspended).
	Next time.Time
}

// Plan decides whether a DataSource must sync now. loaded says whether the
// profile store holds this source's data (false after a manager restart);
// refsVersion identifies the current versions of the Secrets and ConfigMaps it
// references.
func Plan(ds *v1alpha1.DataSource, loaded bool, refsVersion string, now time.Time) Schedule {
	st := &ds.Status
	forced := ds.Annotations[v1alpha1.ForceApplyAnnotation] != "" &&
		ds.Annotations[v1alpha1.ForceApplyAnnotation] != st.LastHandledForceApply
	switch {
	case !loaded && st.LastSuccessfulSyncTime != nil:
		// Rebuild the store after a restart, even when suspended.
		return Schedule{Due: true, Forced: forced, Why: "rebuilding the profile store"}
	case ds.Spec.Suspend && !forced:
		return Schedule{Why: "suspended"}
	case ds.Generation != st.ObservedGeneration:
		return Schedule{Due: true, Forced: forced, Why: "spec changed"}
	case forced:
		return Schedule{Due: true, Forced: true, Why: "force-apply requested"}
	case ds.Annotations[v1alpha1.ReconcileRequestAnnotation] != "" &&
		ds.Annotations[v1alpha1.ReconcileRequestAnnotation] != st.LastHandledReconcileAt:
		return Schedule{Due: true, Why: "reconcile requested"}
	case refsVersion != st.ReferencesVersion:
		return Schedule{Due: true, Forced: forced, Why: "a referenced Secret or ConfigMap changed"}
	case st.LastSyncTime == nil || !loaded:
		return Schedule{Due: true, Why: "never synced"}
	case lastAttemptFailed(st):
		// Retries are paced by the work queue's exponential backoff; Stalled
		// sources only get here on a spec, Secret or ConfigMap change.
		return Schedule{Due: true, Why: "retrying a failed sync"}
	}
	next := st.LastSyncTime.Add(ds.Spec.SyncInterval())
	if !now.Before(next) {
		return Schedule{Due: true, Why: "interval elapsed"}
	}
	return Schedule{Next: next}
}

func lastAttemptFailed(st *v1alpha1.DataSourceStatus) bool {
	if meta.IsStatusConditionTrue(st.Conditions, v1alpha1.StalledCondition) {
		return true
	}
	ready := meta.FindStatusCondition(st.Conditions, v1alpha1.ReadyCondition)
	return ready != nil && ready.Reason == v1alpha1.ReasonSourceDegraded
}

// Staleness reports whether the data is older than maxStaleness and, if not yet,
// when it will be (zero: never).
func Staleness(ds *v1alpha1.DataSource, now time.Time) (stale bool, since time.Time, at time.Time) {
	if ds.Spec.MaxStaleness == nil || ds.Spec.MaxStaleness.Duration <= 0 {
		return false, time.Time{}, time.Time{}
	}
	// Data never loaded counts from the object's creation.
	since = ds.CreationTimestamp.Time
	if ds.Status.LastSuccessfulSyncTime != nil {
		since = ds.Status.LastSuccessfulSyncTime.Time
	}
	at = since.Add(ds.Spec.MaxStaleness.Duration)
	return !now.Before(at), since, at
}

// Sync modes of an incremental source, as status.incremental.lastMode shows.
const (
	ModeFull        = "Full"
	ModeIncremental = "Incremental"
)

// Mode is how to run a due sync of an incremental source.
type Mode struct {
	// Delta: read only the rows changed since Since; otherwise a full load.
	Delta bool
	Since time.Time
	Why   string
}

// IncrementalMode decides whether a due sync may be incremental. Only a source
// whose data the store holds, loaded from the same spec and references, with
// a watermark, and whose last full load is recent enough, may read a delta;
// anything else (a restart, a spec or Secret change, a forced apply, the
// periodic full reconcile) loads everything, which also removes hard-deleted
// rows an incremental sync cannot see.
func IncrementalMode(ds *v1alpha1.DataSource, loaded, forced bool, refsVersion string, now time.Time) Mode {
	spec := IncrementalOf(&ds.Spec)
	if spec == nil {
		return Mode{Why: "not incremental"}
	}
	st := &ds.Status
	inc := st.Incremental
	switch {
	case !loaded:
		return Mode{Why: "first load"}
	case inc == nil || inc.LastFullSyncTime == nil:
		return Mode{Why: "no full load yet"}
	case inc.Watermark == nil:
		return Mode{Why: "no watermark yet (no row had one)"}
	case ds.Generation != st.ObservedGeneration:
		return Mode{Why: "spec changed"}
	case refsVersion != st.ReferencesVersion:
		return Mode{Why: "a referenced Secret changed"}
	case forced:
		return Mode{Why: "force-apply requested"}
	case !now.Before(inc.LastFullSyncTime.Add(spec.FullResync)):
		return Mode{Why: "fullResyncInterval elapsed"}
	}
	return Mode{Delta: true, Since: inc.Watermark.Add(-spec.Overlap), Why: "rows changed since the watermark"}
}

// Notified is the schedule once the database notified a change
// (spec.postgres.incremental.notifyChannel): due now, unless suspended.
func (s Schedule) Notified(ds *v1alpha1.DataSource) Schedule {
	if s.Due || ds.Spec.Suspend {
		return s
	}
	return Schedule{Due: true, Why: "the database notified a change"}
}

// IncrementalSpec is a source's incremental settings, whichever connector
// declares them (spec.postgres.incremental, spec.http.incremental): both
// share the watermark, the deletes, the full reconcile and the breaker.
type IncrementalSpec struct {
	Overlap, FullResync time.Duration
	Read                Incremental
}

// IncrementalOf is the spec's incremental settings, nil for a source that
// always loads in full.
func IncrementalOf(spec *v1alpha1.DataSourceSpec) *IncrementalSpec {
	switch {
	case spec.Type == v1alpha1.DataSourcePostgreSQL && spec.Postgres != nil && spec.Postgres.Incremental != nil:
		pg := spec.Postgres.Incremental
		return &IncrementalSpec{Overlap: pg.OverlapDuration(), FullResync: pg.FullResync(), Read: Incremental{
			WatermarkField: pg.WatermarkColumn, DeletedField: pg.DeletedColumn,
			WatermarkSpec: "spec.postgres.incremental.watermarkColumn", DeletedSpec: "spec.postgres.incremental.deletedColumn",
			What: "the query has no column",
		}}
	case spec.Type == v1alpha1.DataSourceHTTP && spec.HTTP != nil && spec.HTTP.Incremental != nil:
		h := spec.HTTP.Incremental
		return &IncrementalSpec{Overlap: h.OverlapDuration(), FullResync: h.FullResync(), Read: Incremental{
			WatermarkField: h.WatermarkField, DeletedField: h.DeletedField, DeletedValues: h.DeletedValues, NewestFirst: h.NewestFirst,
			WatermarkSpec: "spec.http.incremental.watermarkField", DeletedSpec: "spec.http.incremental.deletedField",
			What: "a record has no field",
		}}
	}
	return nil
}

// IncrementalRead is how Run reads an incremental source's records in mode,
// nil for others.
func IncrementalRead(spec *v1alpha1.DataSourceSpec, mode Mode) *Incremental {
	inc := IncrementalOf(spec)
	if inc == nil {
		return nil
	}
	r := inc.Read
	r.Delta = mode.Delta
	return &r
}
