package controller

import (
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
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
