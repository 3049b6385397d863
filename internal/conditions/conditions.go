// Package conditions is the operator's one status vocabulary, free of
// Kubernetes I/O: every condition is written here (with the object's
// generation, its message bounded), every "the user must fix this" failure is
// a Stalled error that becomes Stalled=True and Ready=False here, and every
// status patch body is built here.
package conditions

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// MaxMessageBytes bounds a condition message. The API allows 32768 bytes, but
// one oversized message (a CEL error quoting a long rule once per mistake)
// would make every status patch of the object fail; a few KiB is what a human
// reads anyway.
const MaxMessageBytes = 4096

// MaxEventBytes bounds an Event note (events.k8s.io/v1 rejects notes over 1 KiB).
const MaxEventBytes = 1024

// TruncatedMarker ends a message that was cut.
const TruncatedMarker = " …[truncated]"

// Truncate bounds s to n bytes, cutting on a UTF-8 rune boundary and ending
// with TruncatedMarker when it cuts.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len(TruncatedMarker)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + TruncatedMarker
}

// Set sets one condition with the object's generation; the message is bounded
// by MaxMessageBytes.
func Set(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: Truncate(msg, MaxMessageBytes), ObservedGeneration: generation,
	})
}

// Remove removes a condition.
func Remove(conds *[]metav1.Condition, typ string) {
	meta.RemoveStatusCondition(conds, typ)
}

// Stalled is a failure the user must fix (an invalid rule, a missing Secret, a
// Job template the API server rejects): retrying cannot help, so the object
// gets Stalled=True and Ready=False with Reason, and a Warning Event, and the
// controller waits for a change of the spec or of a referenced object. The
// message never holds a Secret's contents or record values.
type Stalled struct {
	Reason  string // CamelCase, for the condition reason and the Event
	Message string
}

func (e *Stalled) Error() string { return e.Message }

// Stalledf returns a Stalled error with a formatted message.
func Stalledf(reason, format string, args ...any) error {
	return &Stalled{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AsStalled returns the Stalled error in err's chain, if any.
func AsStalled(err error) (*Stalled, bool) {
	var s *Stalled
	if errors.As(err, &s) {
		return s, true
	}
	return nil, false
}

// IsStalled reports whether err is (or wraps) a Stalled error.
func IsStalled(err error) bool {
	_, ok := AsStalled(err)
	return ok
}

// MarkStalled records s: Stalled=True and Ready=False with its reason, and no
// Reconciling (nothing progresses until the cause is fixed). consequence, when
// set, is appended to Ready's message to say what users of the object still
// see ("membership is unchanged").
func MarkStalled(conds *[]metav1.Condition, generation int64, s *Stalled, consequence string) {
	ready := s.Message
	if consequence != "" {
		// Cut the cause, not the consequence.
		ready = Truncate(ready, MaxMessageBytes-len(consequence)-2) + "; " + consequence
	}
	Remove(conds, v1alpha1.ReconcilingCondition)
	Set(conds, generation, v1alpha1.StalledCondition, metav1.ConditionTrue, s.Reason, s.Message)
	Set(conds, generation, v1alpha1.ReadyCondition, metav1.ConditionFalse, s.Reason, ready)
}

// StalledBy reports whether the object is stalled, at its current generation,
// for one of the reasons.
func StalledBy(conds []metav1.Condition, generation int64, reasons ...string) bool {
	c := meta.FindStatusCondition(conds, v1alpha1.StalledCondition)
	if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != generation {
		return false
	}
	for _, r := range reasons {
		if c.Reason == r {
			return true
		}
	}
	return false
}
