package preview

import (
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/query/report"
)

// Target is a persona as a Playbook's trigger sees it: its name and labels,
// the stage label included (the Persona controller mirrors spec.stage into it).
type Target struct {
	Name   string
	Labels map[string]string
}

// TargetOf returns the persona as the trigger will see it once the controller
// has mirrored spec.stage into the stage label.
func TargetOf(p *v1alpha1.Persona) Target {
	l := map[string]string{}
	for k, v := range p.Labels {
		l[k] = v
	}
	delete(l, v1alpha1.StageLabel)
	if p.Spec.Stage != "" {
		l[v1alpha1.StageLabel] = string(p.Spec.Stage)
	}
	return Target{Name: p.Name, Labels: l}
}

// Matches reports whether a playbook's trigger selects the persona, and by
// which field; the same rules as the Playbook controller's.
func Matches(pb *v1alpha1.Playbook, t Target) (bool, string, error) {
	switch {
	case pb.Spec.PersonaRef != nil:
		return pb.Spec.PersonaRef.Name == t.Name, "personaRef", nil
	case pb.Spec.PersonaSelector != nil:
		sel, err := metav1.LabelSelectorAsSelector(pb.Spec.PersonaSelector)
		if err != nil {
			return false, "personaSelector", fmt.Errorf("playbook %s: spec.personaSelector: %w", pb.Name, err)
		}
		return sel.Matches(labels.Set(t.Labels)), "personaSelector", nil
	case pb.Spec.Stage != "":
		return t.Labels[v1alpha1.StageLabel] == string(pb.Spec.Stage), "stage", nil
	}
	return false, "", nil
}

// Input is what launch counting reads.
type Input struct {
	Persona string
	// After is the previewed persona; Before the live one (nil: none).
	After  Target
	Before *Target
	// Entered and Exited are the user ids Diff found.
	Entered, Exited []string
	// Runs is each playbook's ledger (user id → run), by playbook name; a
	// playbook without an entry has no runs.
	Runs map[string]map[string]v1alpha1.PlaybookRun
	Now  time.Time
}

// Launches lists the playbooks whose trigger matches the previewed persona, or
// matched the live one, with how many users each would start a run for. A
// playbook whose selector is invalid is listed with its error: another team's
// broken Playbook must not fail this persona's preview, nor be hidden from it.
func Launches(playbooks []v1alpha1.Playbook, in Input) []report.PlaybookLaunch {
	out := []report.PlaybookLaunch{}
	for i := range playbooks {
		pb := &playbooks[i]
		after, by, err := Matches(pb, in.After)
		before := false
		if err == nil && in.Before != nil {
			before, _, err = Matches(pb, *in.Before)
		}
		if err != nil {
			out = append(out, report.PlaybookLaunch{Name: pb.Name, Trigger: trigger(pb), By: by, Error: err.Error()})
			continue
		}
		if !after && !before {
			continue
		}
		l := report.PlaybookLaunch{Name: pb.Name, Trigger: trigger(pb), By: by, Suspended: pb.Spec.Suspend, StopsMatching: !after}
		l.Users, l.Skipped = count(pb, in, after, in.Runs[pb.Name])
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func trigger(pb *v1alpha1.Playbook) v1alpha1.TriggerEvent {
	if pb.Spec.Trigger == "" {
		return v1alpha1.TriggerEnter
	}
	return pb.Spec.Trigger
}

// count is how many users a playbook would start a run for, and how many
// entering (or exiting) users it would skip, following the planner's rules:
// an Enter playbook runs for a new entry unless the user's earlier run rules
// it out; an Exit playbook runs for a user it armed when they entered.
func count(pb *v1alpha1.Playbook, in Input, matchesAfter bool, runs map[string]v1alpha1.PlaybookRun) (users, skipped int) {
	if trigger(pb) == v1alpha1.TriggerExit {
		return countExits(in, matchesAfter, runs)
	}
	if !matchesAfter {
		return 0, 0 // no longer watched: nobody enters from its point of view
	}
	for _, id := range in.Entered {
		if r, ok := runs[id]; ok && !rerun(pb, r, in.Now) {
			skipped++
			continue
		}
		users++
	}
	return users, skipped
}

// countExits: when the playbook stops watching the persona, every member it
// armed leaves its view, not only those who leave the persona.
func countExits(in Input, matchesAfter bool, runs map[string]v1alpha1.PlaybookRun) (users, skipped int) {
	if !matchesAfter {
		for _, r := range runs {
			if r.Phase == v1alpha1.RunArmed && r.Persona == in.Persona {
				users++
			}
		}
		return users, 0
	}
	for _, id := range in.Exited {
		if r, ok := runs[id]; ok && r.Phase == v1alpha1.RunArmed && r.Persona == in.Persona {
			users++
			continue
		}
		skipped++
	}
	return users, skipped
}

// rerun mirrors the planner: reentryPolicy Once never runs twice; EveryEntry
// waits for the previous run to finish and for the cooldown.
func rerun(pb *v1alpha1.Playbook, r v1alpha1.PlaybookRun, now time.Time) bool {
	if pb.Spec.ReentryPolicy != v1alpha1.ReentryEveryEntry {
		return false
	}
	if r.Phase != v1alpha1.RunSucceeded && r.Phase != v1alpha1.RunFailed {
		return false
	}
	if r.StartedAt != nil && pb.Spec.Cooldown != nil && now.Before(r.StartedAt.Add(pb.Spec.Cooldown.Duration)) {
		return false
	}
	return true
}
