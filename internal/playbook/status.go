package playbook

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/conditions"
)

// MarkReady sets the Ready condition (and clears Reconciling when not ready:
// nothing progresses until the cause is fixed).
func MarkReady(pb *v1alpha1.Playbook, status metav1.ConditionStatus, reason, msg string) {
	set(pb, v1alpha1.ReadyCondition, status, reason, msg)
	if status != metav1.ConditionTrue {
		conditions.Remove(&pb.Status.Conditions, v1alpha1.ReconcilingCondition)
	}
}

func set(pb *v1alpha1.Playbook, typ string, status metav1.ConditionStatus, reason, msg string) {
	conditions.Set(&pb.Status.Conditions, pb.Generation, typ, status, reason, msg)
}

// LaunchMessage is the note of the Event of a pass that created Jobs.
func LaunchMessage(created int, c Counts) string {
	return fmt.Sprintf("created %s; %s pending, %d running", Plural(int64(created), "Job"), Plural(c.Pending, "run"), c.Running)
}

// Plural is "1 Job", "2 Jobs".
func Plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Record writes a pass's counts and conditions into status. Counts are
// recomputed from the ledger and Jobs on every pass, never accumulated, so a
// lost status write cannot skew them.
func Record(pb *v1alpha1.Playbook, plan Plan, paused bool, pauseReason string) {
	st := &pb.Status
	c := plan.Counts
	st.Pending, st.Running, st.Succeeded, st.Failed, st.Overdue = c.Pending, c.Running, c.Succeeded, c.Failed, c.Overdue
	summary := fmt.Sprintf("%d pending, %d running, %d succeeded, %d failed, %d overdue", c.Pending, c.Running, c.Succeeded, c.Failed, c.Overdue)
	switch {
	case paused && pauseReason == v1alpha1.ReasonDataStale:
		MarkReady(pb, metav1.ConditionFalse, pauseReason, "launches paused: a persona's data is stale; "+summary)
	case paused:
		MarkReady(pb, metav1.ConditionFalse, pauseReason, "launches suspended; "+summary)
	default:
		MarkReady(pb, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, summary)
		if c.Pending > 0 {
			set(pb, v1alpha1.ReconcilingCondition, metav1.ConditionTrue, v1alpha1.ReasonProgressing,
				fmt.Sprintf("%s waiting for a launch slot (maxConcurrentJobs, maxLaunchesPerMinute)", Plural(c.Pending, "run")))
		} else {
			conditions.Remove(&pb.Status.Conditions, v1alpha1.ReconcilingCondition)
		}
	}
}
