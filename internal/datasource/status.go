package datasource

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/profile"
)

func setCondition(st *v1alpha1.DataSourceStatus, gen int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	conditions.Set(&st.Conditions, gen, typ, status, reason, msg)
}

// Record writes the result of a sync into status. applied says whether the
// data went into the profile store. A fetch that failed with a Stalled error
// (connector.ConfigError) is the caller's to record, with its Event.
func Record(ds *v1alpha1.DataSource, o Outcome, applied bool, now time.Time) {
	st := &ds.Status
	gen := ds.Generation
	t := metav1.NewTime(now)
	st.LastSyncTime = &t
	st.LastSyncDuration = &metav1.Duration{Duration: o.Duration.Round(time.Millisecond)}
	st.LastHandledReconcileAt = ds.Annotations[v1alpha1.ReconcileRequestAnnotation]
	conditions.Remove(&st.Conditions, v1alpha1.ReconcilingCondition)

	switch {
	case o.FetchErr != nil && connector.IsConfig(o.FetchErr):
		return
	case o.FetchErr != nil:
		conditions.Remove(&st.Conditions, v1alpha1.StalledCondition)
		setCondition(st, gen, v1alpha1.ReadyCondition, metav1.ConditionFalse, v1alpha1.ReasonSourceDegraded,
			keeping(st, "sync failed: "+o.FetchErr.Error()))
		return
	}
	conditions.Remove(&st.Conditions, v1alpha1.StalledCondition)
	st.RecordsRejected = o.Rejected
	st.Rejections = o.Rejections
	markRejected(ds, o)
	if !applied {
		st.HeldBackRecords = o.Accepted
		if o.Delta != nil {
			// What the source would hold with the delta's deletes applied.
			st.HeldBackRecords = max(st.RecordsAccepted-o.Deletes, 0)
		}
		setCondition(st, gen, v1alpha1.ReadyCondition, metav1.ConditionFalse, o.Decision.Reason, o.Decision.Message)
		return
	}
	st.HeldBackRecords = 0
	st.LastSuccessfulSyncTime = &t
	if v := ds.Annotations[v1alpha1.ForceApplyAnnotation]; v != "" {
		st.LastHandledForceApply = v
	}
	recordIncremental(ds, o, t)
	if o.Delta != nil {
		if o.Applied == nil { // the caller did not say what it changed: keep the counts
			o.Applied = &profile.DeltaResult{Records: st.RecordsAccepted, Digest: st.Digest}
		}
		st.RecordsAccepted = o.Applied.Records
		st.Digest = o.Applied.Digest
		setCondition(st, gen, v1alpha1.ReadyCondition, metav1.ConditionTrue, v1alpha1.ReasonSucceeded,
			fmt.Sprintf("incremental sync: %d rows read, %d upserted, %d deleted (%d rejected) in %s; %d records",
				o.Accepted+o.Deletes, o.Applied.Upserted, o.Applied.Deleted, o.Rejected, st.LastSyncDuration.Duration, o.Applied.Records))
		return
	}
	st.RecordsAccepted = o.Accepted
	st.Digest = o.Data.Digest
	setCondition(st, gen, v1alpha1.ReadyCondition, metav1.ConditionTrue, v1alpha1.ReasonSucceeded,
		fmt.Sprintf("applied %d records (%d rejected) in %s", o.Accepted, o.Rejected, st.LastSyncDuration.Duration))
}

// recordIncremental moves an incremental source's watermark after an applied
// sync: a full load sets it to the largest value it read, a delta only ever
// moves it forward. A held-back or failed sync leaves it, so the next one
// asks for the same rows again.
func recordIncremental(ds *v1alpha1.DataSource, o Outcome, now metav1.Time) {
	if IncrementalOf(&ds.Spec) == nil {
		ds.Status.Incremental = nil
		return
	}
	inc := ds.Status.Incremental
	if inc == nil {
		inc = &v1alpha1.IncrementalStatus{}
		ds.Status.Incremental = inc
	}
	wm := metav1.NewTime(o.Watermark.UTC())
	if o.Delta == nil {
		inc.LastMode, inc.LastFullSyncTime, inc.LastUpserts, inc.LastDeletes = ModeFull, &now, 0, 0
		inc.Watermark = nil
		if !o.Watermark.IsZero() {
			inc.Watermark = &wm
		}
		return
	}
	inc.LastMode = ModeIncremental
	if o.Applied != nil {
		inc.LastUpserts, inc.LastDeletes = o.Applied.Upserted, o.Applied.Deleted
	}
	if !o.Watermark.IsZero() && (inc.Watermark == nil || o.Watermark.After(inc.Watermark.Time)) {
		inc.Watermark = &wm
	}
}

// Rejected says whether a sync rejected more than the spec's maxRejectPercent
// of its records, and how many.
func Rejected(spec *v1alpha1.DataSourceSpec, o Outcome) (bool, string) {
	total := o.Accepted + o.Rejected
	if o.Rejected == 0 || o.Rejected*100 <= int64(spec.RejectLimit())*total {
		return false, ""
	}
	msg := fmt.Sprintf("%d of %d records rejected (%.3g%%, more than maxRejectPercent %d%%)",
		o.Rejected, total, float64(o.Rejected)*100/float64(total), spec.RejectLimit())
	if len(o.Rejections) > 0 {
		r := o.Rejections[0]
		msg += fmt.Sprintf("; first: record %d: %s", r.Record, r.Reason)
	}
	return true, msg
}

func markRejected(ds *v1alpha1.DataSource, o Outcome) {
	if bad, msg := Rejected(&ds.Spec, o); bad {
		setCondition(&ds.Status, ds.Generation, v1alpha1.DegradedCondition, metav1.ConditionTrue, v1alpha1.ReasonRecordsRejected, msg)
		return
	}
	conditions.Remove(&ds.Status.Conditions, v1alpha1.DegradedCondition)
}

// keeping adds what consumers still see to a failure message.
func keeping(st *v1alpha1.DataSourceStatus, msg string) string {
	return msg + "; " + Keeping(st)
}

// Keeping says what consumers still see of a DataSource whose sync failed.
func Keeping(st *v1alpha1.DataSourceStatus) string {
	if st.LastSuccessfulSyncTime == nil {
		return "no data has been loaded yet"
	}
	return fmt.Sprintf("keeping the last good data (%d records from %s)",
		st.RecordsAccepted, st.LastSuccessfulSyncTime.UTC().Format(time.RFC3339))
}

// MarkAttempt records a sync attempt that stopped before fetching (a missing
// Secret, an invalid mapping); the caller records why.
func MarkAttempt(ds *v1alpha1.DataSource, now time.Time) {
	st := &ds.Status
	t := metav1.NewTime(now)
	st.LastSyncTime = &t
	st.LastHandledReconcileAt = ds.Annotations[v1alpha1.ReconcileRequestAnnotation]
}

// MarkStaleness sets or clears the Stale condition.
func MarkStaleness(ds *v1alpha1.DataSource, now time.Time) {
	stale, since, _ := Staleness(ds, now)
	if !stale {
		conditions.Remove(&ds.Status.Conditions, v1alpha1.StaleCondition)
		return
	}
	msg := fmt.Sprintf("no successful sync since %s, longer than maxStaleness %s",
		since.UTC().Format(time.RFC3339), ds.Spec.MaxStaleness.Duration)
	if ds.Status.LastSuccessfulSyncTime == nil {
		msg = fmt.Sprintf("no successful sync since the DataSource was created (%s), longer than maxStaleness %s",
			since.UTC().Format(time.RFC3339), ds.Spec.MaxStaleness.Duration)
	}
	setCondition(&ds.Status, ds.Generation, v1alpha1.StaleCondition, metav1.ConditionTrue, v1alpha1.ReasonDataStale, msg)
}

// MarkConflicts reports attributes the store ignores because a source of higher
// precedence declares them with another type.
func MarkConflicts(ds *v1alpha1.DataSource, conflicts []string) {
	// Conflicts do not make the source unusable: its other attributes apply.
	// They are surfaced on Ready's message so `kubectl get` shows them.
	if len(conflicts) == 0 {
		return
	}
	c := meta.FindStatusCondition(ds.Status.Conditions, v1alpha1.ReadyCondition)
	if c == nil || c.Status != metav1.ConditionTrue {
		return
	}
	msg := c.Message + "; ignored attributes: " + fmt.Sprint(conflicts)
	setCondition(&ds.Status, ds.Generation, v1alpha1.ReadyCondition, metav1.ConditionTrue, v1alpha1.ReasonSchemaConflict, msg)
}

// MarkNotLoaded records a DataSource with spec.load None whose query was
// checked: Ready with reason NotLoaded, nothing in the manager's memory (the
// counts of an earlier load are cleared, they no longer describe it).
func MarkNotLoaded(ds *v1alpha1.DataSource, columns []string, refsVersion string) {
	st := &ds.Status
	st.ObservedGeneration = ds.Generation
	st.ReferencesVersion = refsVersion
	st.RecordsAccepted, st.RecordsRejected, st.HeldBackRecords = 0, 0, 0
	st.Rejections, st.Digest, st.Incremental = nil, "", nil
	for _, typ := range []string{v1alpha1.StalledCondition, v1alpha1.ReconcilingCondition, v1alpha1.DegradedCondition, v1alpha1.StaleCondition} {
		conditions.Remove(&st.Conditions, typ)
	}
	setCondition(st, ds.Generation, v1alpha1.ReadyCondition, metav1.ConditionTrue, v1alpha1.ReasonNotLoaded,
		fmt.Sprintf("spec.load is None: not loaded into the manager's memory; read in the database by the personas evaluated there "+
			"(the query returns %d columns: %s)", len(columns), strings.Join(columns, ", ")))
}
