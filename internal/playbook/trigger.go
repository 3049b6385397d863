package playbook

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// Target is a persona as a Playbook's trigger sees it: its name and labels,
// the stage label included.
type Target struct {
	Name   string
	Labels map[string]string
}

// TargetOf is a persona as the trigger will see it once the Persona
// controller has mirrored spec.stage into the stage label: what a previewed
// (not yet applied) persona will be selected as. The Playbook controller
// reads live personas as they are labelled.
func TargetOf(p *v1alpha1.Persona) Target {
	l := make(map[string]string, len(p.Labels)+1)
	for k, v := range p.Labels {
		l[k] = v
	}
	delete(l, v1alpha1.StageLabel)
	if p.Spec.Stage != "" {
		l[v1alpha1.StageLabel] = string(p.Spec.Stage)
	}
	return Target{Name: p.Name, Labels: l}
}

// Trigger is a playbook's persona selection, parsed: personaRef first, then
// personaSelector, then stage (by the stage label).
type Trigger struct {
	// By names the field that selects: personaRef, personaSelector or stage;
	// empty when none is set (nothing is selected).
	By       string
	ref      string
	selector labels.Selector
}

// TriggerOf parses a playbook's trigger; an invalid personaSelector is an
// error naming the field.
func TriggerOf(spec *v1alpha1.PlaybookSpec) (Trigger, error) {
	switch {
	case spec.PersonaRef != nil:
		return Trigger{By: "personaRef", ref: spec.PersonaRef.Name}, nil
	case spec.PersonaSelector != nil:
		sel, err := metav1.LabelSelectorAsSelector(spec.PersonaSelector)
		if err != nil {
			return Trigger{By: "personaSelector"}, fmt.Errorf("spec.personaSelector: %w", err)
		}
		return Trigger{By: "personaSelector", selector: sel}, nil
	case spec.Stage != "":
		return Trigger{By: "stage", selector: labels.SelectorFromSet(labels.Set{v1alpha1.StageLabel: string(spec.Stage)})}, nil
	}
	return Trigger{}, nil
}

// Selects reports whether the trigger selects the persona.
func (t Trigger) Selects(p Target) bool {
	switch {
	case t.ref != "":
		return p.Name == t.ref
	case t.selector != nil:
		return t.selector.Matches(labels.Set(p.Labels))
	}
	return false
}

// SpecOf is what the planner needs of a Playbook.
func SpecOf(pb *v1alpha1.Playbook) Spec {
	s := Spec{
		Name: pb.Name, UID: string(pb.UID), OnExit: pb.Spec.Trigger == v1alpha1.TriggerExit,
		Once: pb.Spec.ReentryPolicy != v1alpha1.ReentryEveryEntry, IncludeExisting: pb.Spec.IncludeExistingMembers,
		Created: pb.CreationTimestamp.Time, UsersPerJob: int(pb.Spec.UsersPerJob),
	}
	if pb.Spec.Cooldown != nil {
		s.Cooldown = pb.Spec.Cooldown.Duration
	}
	for _, st := range pb.Spec.Steps {
		step := Step{Name: st.Name}
		if st.DueAfter != nil {
			step.DueAfter = st.DueAfter.Duration
		}
		s.Steps = append(s.Steps, step)
	}
	return s
}

// Reruns reports whether a user whose recorded run is r gets a new run for
// the entry (or exit) m: never with reentryPolicy Once nor for the same
// entry; otherwise once the previous run has finished and its cooldown has
// passed. until is when the cooldown ends, when it alone stands in the way.
func Reruns(spec Spec, r v1alpha1.PlaybookRun, m Member, now time.Time) (ok bool, until time.Time) {
	if spec.Once {
		return false, time.Time{}
	}
	if r.Persona == m.Persona && r.EnteredAt.Time.Equal(m.EnteredAt) {
		return false, time.Time{} // the same entry
	}
	if r.Phase != v1alpha1.RunSucceeded && r.Phase != v1alpha1.RunFailed {
		return false, time.Time{} // one run at a time per user
	}
	if r.StartedAt != nil && spec.Cooldown > 0 {
		if until := r.StartedAt.Add(spec.Cooldown); now.Before(until) {
			return false, until
		}
	}
	return true, time.Time{}
}
