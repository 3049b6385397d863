package controller

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/conditions"
)

// patchStatus is every reconciler's one status write. It writes nothing when
// the status did not change (a no-op reconcile makes no API write), and
// otherwise sends the whole new status (conditions.StatusPatch), so zero
// counts are stored and kubectl's columns show 0, not blank. With lock the
// patch fails on a conflict: for statuses holding read-modify-write counters.
func patchStatus(ctx context.Context, c client.Client, before, obj client.Object, beforeStatus, afterStatus any, lock bool) error {
	if equality.Semantic.DeepEqual(beforeStatus, afterStatus) {
		return nil
	}
	rv := ""
	if lock {
		rv = before.GetResourceVersion()
	}
	body, err := conditions.StatusPatch(before, obj, rv)
	if err != nil {
		return err
	}
	return client.IgnoreNotFound(c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, body)))
}

// stall is how every reconciler reports a failure the user must fix: Stalled=True
// and Ready=False with the error's reason (consequence says what users of the
// object still see), and a Warning Event with the same reason. The caller then
// returns no error: retrying cannot help, a change of the spec or of a
// referenced object re-triggers.
//
// The Event is emitted when the object becomes stalled or the cause changes,
// not on every reconcile that finds it still stalled (a Persona with an
// invalid rule is reconciled on every sync of its namespace's DataSources).
func stall(rec events.EventRecorder, obj client.Object, conds *[]metav1.Condition, s *conditions.Stalled, action, consequence string) {
	prior := meta.FindStatusCondition(*conds, v1alpha1.StalledCondition)
	known := prior != nil && prior.Status == metav1.ConditionTrue && prior.Reason == s.Reason &&
		prior.Message == conditions.Truncate(s.Message, conditions.MaxMessageBytes)
	conditions.MarkStalled(conds, obj.GetGeneration(), s, consequence)
	if !known {
		warn(rec, obj, s.Reason, action, s.Message)
	}
}

// warn emits a Warning Event, its note bounded as the Events API requires.
func warn(rec events.EventRecorder, obj client.Object, reason, action, msg string) {
	if rec == nil {
		return
	}
	rec.Eventf(obj, nil, corev1.EventTypeWarning, reason, action, "%s", conditions.Truncate(msg, conditions.MaxEventBytes))
}
