package query

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// A preview past its deadline stops and answers an error, not a partial
// evaluation. (That the evaluation itself stops once the context is done is
// rule.TestWithContext.)
func TestPreviewStopsAtItsDeadline(t *testing.T) {
	f := newFixture(t)
	defer func(d time.Duration) { previewTimeout = d }(previewTimeout)
	previewTimeout = time.Nanosecond
	var st metav1.Status
	w := f.do(t, http.MethodPost, previewPath, goodToken,
		v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: `user.nps <= 6 || user.role == "admin"`}}, &st)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(st.Message, "the preview took longer than 1ns and was stopped") {
		t.Fatalf("code %d message %q, want 503 and a stopped preview", w.Code, st.Message)
	}
}

func TestStoppedMessages(t *testing.T) {
	if e := stopped(context.Canceled); e.code != http.StatusServiceUnavailable || !strings.Contains(e.msg, "the preview was cancelled") {
		t.Errorf("cancelled: %d %q", e.code, e.msg)
	}
	if e := stopped(fmt.Errorf("wrapped: %w", context.DeadlineExceeded)); !strings.Contains(e.msg, "took longer than") {
		t.Errorf("deadline: %q", e.msg)
	}
}
