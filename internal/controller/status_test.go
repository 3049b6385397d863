package controller

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/events"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/conditions"
)

func TestPermanentCreateError(t *testing.T) {
	job := schema.GroupResource{Group: "batch", Resource: "jobs"}
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "batch", Kind: "Job"}, "j1",
		field.ErrorList{field.Invalid(field.NewPath("spec", "template", "spec", "containers").Index(0).Child("name"), "Bad_Name", "not a DNS label")})
	wrap := func(err error) error { return fmt.Errorf("creating Job j1: %w", err) }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"invalid template", wrap(invalid), true},
		{"bad request", wrap(apierrors.NewBadRequest("no")), true},
		{"one invalid among transient ones", errors.Join(wrap(apierrors.NewServiceUnavailable("down")), wrap(invalid)), true},
		{"quota", wrap(apierrors.NewForbidden(job, "j1", errors.New("exceeded quota"))), false},
		{"server down", errors.Join(wrap(apierrors.NewServiceUnavailable("down")), wrap(apierrors.NewTimeoutError("slow", 1))), false},
	} {
		if got := permanentCreateError(tc.err); got != tc.want {
			t.Errorf("%s: permanentCreateError = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPersonaNotFound(t *testing.T) {
	pb := &v1alpha1.Playbook{}
	pb.Namespace = "ns"
	pb.Spec.PersonaRef = &v1alpha1.LocalObjectReference{Name: "ghost"}
	if got, want := personaNotFound(pb), `persona "ghost" (spec.personaRef) not found in namespace "ns"`; got != want {
		t.Errorf("personaRef: %q, want %q", got, want)
	}
	pb.Spec.PersonaRef, pb.Spec.Stage = nil, v1alpha1.StageTrial
	if got, want := personaNotFound(pb), `no persona in namespace "ns" has stage "trial"`; got != want {
		t.Errorf("stage: %q, want %q", got, want)
	}
}

// stall marks the conditions every time, and emits its Warning Event when the
// object becomes stalled or the cause changes.
func TestStallEmitsOncePerCause(t *testing.T) {
	rec := events.NewFakeRecorder(10)
	p := &v1alpha1.Persona{}
	p.Generation = 1
	invalid := &conditions.Stalled{Reason: v1alpha1.ReasonInvalidRule, Message: "spec.rule: undefined field 'nps'"}
	stall(rec, p, &p.Status.Conditions, invalid, "Evaluate", "membership is unchanged")
	stall(rec, p, &p.Status.Conditions, invalid, "Evaluate", "membership is unchanged")
	other := &conditions.Stalled{Reason: v1alpha1.ReasonInvalidRule, Message: "spec.rule: undefined field 'role'"}
	stall(rec, p, &p.Status.Conditions, other, "Evaluate", "membership is unchanged")
	close(rec.Events)
	var got []string
	for e := range rec.Events {
		got = append(got, e)
	}
	want := []string{
		"Warning InvalidRule spec.rule: undefined field 'nps'",
		"Warning InvalidRule spec.rule: undefined field 'role'",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events = %q, want %q", got, want)
	}
	ready := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ReadyCondition)
	if ready.Reason != v1alpha1.ReasonInvalidRule || ready.Message != "spec.rule: undefined field 'role'; membership is unchanged" {
		t.Fatalf("Ready = %+v", ready)
	}
}
