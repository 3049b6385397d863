package preview

import (
	"fmt"
	"sort"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/playbook"
	"github.com/usersuccess/persona-operator/internal/queryapi"
)

// Matches reports whether a playbook's trigger selects the persona, and by
// which field: playbook.TriggerOf, the Playbook controller's own decision.
func Matches(pb *v1alpha1.Playbook, t playbook.Target) (bool, string, error) {
	trigger, err := playbook.TriggerOf(&pb.Spec)
	if err != nil {
		return false, trigger.By, fmt.Errorf("playbook %s: %w", pb.Name, err)
	}
	return trigger.Selects(t), trigger.By, nil
}

// Input is what launch counting reads.
type Input struct {
	Persona string
	// After is the previewed persona; Before the live one (nil: none).
	After  playbook.Target
	Before *playbook.Target
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
func Launches(playbooks []v1alpha1.Playbook, in Input) []queryapi.PlaybookLaunch {
	out := []queryapi.PlaybookLaunch{}
	for i := range playbooks {
		pb := &playbooks[i]
		after, by, err := Matches(pb, in.After)
		before := false
		if err == nil && in.Before != nil {
			before, _, err = Matches(pb, *in.Before)
		}
		if err != nil {
			out = append(out, queryapi.PlaybookLaunch{Name: pb.Name, Trigger: trigger(pb), By: by, Error: err.Error()})
			continue
		}
		if !after && !before {
			continue
		}
		l := queryapi.PlaybookLaunch{Name: pb.Name, Trigger: trigger(pb), By: by, Suspended: pb.Spec.Suspend, StopsMatching: !after}
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
	spec := playbook.SpecOf(pb)
	for _, id := range in.Entered {
		if r, ok := runs[id]; ok {
			entry := playbook.Member{Persona: in.Persona, UserID: id, EnteredAt: in.Now}
			if again, _ := playbook.Reruns(spec, r, entry, in.Now); !again {
				skipped++
				continue
			}
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
