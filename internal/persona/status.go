package persona

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/membership"
)

// SampleSize is how many member ids status shows.
const SampleSize = 10

// Outcome is one evaluation that was stored in slices.
type Outcome struct {
	Eval   Evaluation
	Change membership.Change
	// Counts are entries and exits counted but not listed (an evaluation in
	// the database streams them), added to Change's.
	Counts membership.Counts
	// Members is the number of members after the evaluation, Sample the
	// smallest of their ids (membership.Smallest, SampleSize of them).
	Members int
	Sample  []string
	Slices  int
	Sources []v1alpha1.SourceFreshness
	Now     time.Time
	// Evaluation is where the rule was evaluated (ChooseEvaluation).
	Evaluation v1alpha1.EvaluationStatus
}

func set(p *v1alpha1.Persona, typ string, status metav1.ConditionStatus, reason, msg string) {
	conditions.Set(&p.Status.Conditions, p.Generation, typ, status, reason, msg)
}

// Record writes an evaluation into status.
func Record(p *v1alpha1.Persona, o Outcome) {
	st := &p.Status
	st.ObservedGeneration = p.Generation
	t := metav1.NewTime(o.Now)
	st.LastEvaluationTime = &t
	st.LastEvaluationDuration = &metav1.Duration{Duration: o.Eval.Duration.Round(time.Millisecond)}
	st.Members = int64(o.Members)
	st.Slices = int32(o.Slices)
	st.EvaluationErrors = o.Eval.Errors
	st.SampleMembers = o.Sample
	st.Insights = o.Eval.Insights
	st.NextEvaluationTime = nil
	if next := NextEvaluation(o.Eval); !next.IsZero() {
		t := metav1.NewTime(next)
		st.NextEvaluationTime = &t
	}
	st.Sources = o.Sources
	st.DataFreshness = oldest(o.Sources)
	st.Evaluation = nil
	if o.Evaluation.Mode != "" {
		ev := o.Evaluation
		ev.Reason = conditions.Truncate(ev.Reason, 1024)
		st.Evaluation = &ev
	}
	entered, exited := int64(len(o.Change.Entered)+o.Counts.Entered), int64(len(o.Change.Exited)+o.Counts.Exited)
	switch {
	case entered+exited > 0:
		st.LastChange = &v1alpha1.MembershipChange{Entered: entered, Exited: exited, Time: &t}
		st.TotalEntered += entered
		st.TotalExited += exited
	case st.LastChange == nil:
		// No change yet: kubectl's Entered and Exited columns show 0, not blank.
		st.LastChange = &v1alpha1.MembershipChange{}
	}
	st.LastHandledReconcileAt = p.Annotations[v1alpha1.ReconcileRequestAnnotation]
	conditions.Remove(&st.Conditions, v1alpha1.ReconcilingCondition)
	conditions.Remove(&st.Conditions, v1alpha1.StalledCondition)
	set(p, v1alpha1.ReadyCondition, metav1.ConditionTrue, v1alpha1.ReasonSucceeded,
		fmt.Sprintf("%d members (%d entered, %d exited in the last change); %d profiles failed to evaluate",
			st.Members, lastEntered(st), lastExited(st), o.Eval.Errors))
	markStale(p, o.Sources)
}

func lastEntered(st *v1alpha1.PersonaStatus) int64 {
	if st.LastChange == nil {
		return 0
	}
	return st.LastChange.Entered
}

func lastExited(st *v1alpha1.PersonaStatus) int64 {
	if st.LastChange == nil {
		return 0
	}
	return st.LastChange.Exited
}

func markStale(p *v1alpha1.Persona, sources []v1alpha1.SourceFreshness) {
	var stale []string
	for _, s := range sources {
		if s.Stale {
			stale = append(stale, s.Name)
		}
	}
	if len(stale) == 0 {
		conditions.Remove(&p.Status.Conditions, v1alpha1.StaleCondition)
		return
	}
	set(p, v1alpha1.StaleCondition, metav1.ConditionTrue, v1alpha1.ReasonDataStale,
		"computed from stale data: DataSource "+strings.Join(stale, ", ")+" is older than its maxStaleness")
}

// MarkWaiting says the persona waits for its DataSources; membership is unchanged.
func MarkWaiting(p *v1alpha1.Persona, msg string) {
	conditions.Remove(&p.Status.Conditions, v1alpha1.StalledCondition)
	set(p, v1alpha1.ReadyCondition, metav1.ConditionFalse, v1alpha1.ReasonWaitingForSources, msg+"; "+Unchanged)
}

// Unchanged is what a persona that cannot be evaluated still shows.
const Unchanged = "membership is unchanged"

// InvalidRule is the Stalled error of a rule (or an insight) that does not
// compile against the namespace's schema.
func InvalidRule(err error) *conditions.Stalled {
	return &conditions.Stalled{Reason: v1alpha1.ReasonInvalidRule, Message: err.Error()}
}

func oldest(sources []v1alpha1.SourceFreshness) *metav1.Time {
	var out *metav1.Time
	for _, s := range sources {
		if s.LastSuccessfulSyncTime != nil && (out == nil || s.LastSuccessfulSyncTime.Before(out)) {
			t := *s.LastSuccessfulSyncTime
			out = &t
		}
	}
	return out
}

// EvaluationTimeout is the condition of an evaluation that ran past the
// manager's deadline: Ready=False, membership unchanged (nothing of the
// stopped evaluation is applied), retried later.
func EvaluationTimeout(p *v1alpha1.Persona, limit time.Duration, profiles int) string {
	msg := fmt.Sprintf("evaluating about %d profiles took longer than %s (the manager's --max-evaluation-time); %s",
		profiles, limit, Unchanged)
	conditions.Remove(&p.Status.Conditions, v1alpha1.StalledCondition)
	set(p, v1alpha1.ReadyCondition, metav1.ConditionFalse, v1alpha1.ReasonEvaluationTimeout, msg)
	return msg
}

// DatabaseFailed is the condition of an evaluation in the database that
// failed (unreachable, refused, timed out): Ready=False; the slices written
// before the failure stand (each write leaves a consistent membership), the
// rest is unchanged until the next evaluation. err must be sanitized (no DSN).
func DatabaseFailed(p *v1alpha1.Persona, err error) string {
	msg := "evaluating in the database failed: " + err.Error() + "; slices written before the failure stand, the rest is unchanged"
	conditions.Remove(&p.Status.Conditions, v1alpha1.StalledCondition)
	set(p, v1alpha1.ReadyCondition, metav1.ConditionFalse, v1alpha1.ReasonSourceDegraded, conditions.Truncate(msg, 1024))
	return msg
}
