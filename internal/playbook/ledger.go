package playbook

import (
	"fmt"
	"sort"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// LedgerSlice is one PlaybookProgress object's runs.
type LedgerSlice struct {
	Name string
	Runs []v1alpha1.PlaybookRun
}

// LedgerPlan is the set of ledger writes for one pass: like membership slices,
// writes scale with what changed, not with the ledger's size.
type LedgerPlan struct {
	Create [][]v1alpha1.PlaybookRun
	Update []LedgerSlice
}

// Writes is the number of API writes the plan needs.
func (p LedgerPlan) Writes() int { return len(p.Create) + len(p.Update) }

// LedgerSlices are PlaybookProgress objects as ledger slices.
func LedgerSlices(items []v1alpha1.PlaybookProgress) []LedgerSlice {
	out := make([]LedgerSlice, len(items))
	for i, it := range items {
		out[i] = LedgerSlice{Name: it.Name, Runs: it.Runs}
	}
	return out
}

// Runs flattens slices into one run per user. A user found in two slices (only
// possible if someone edited them by hand) keeps the record of the slice that
// comes first by name, so reads are deterministic.
func Runs(slices []LedgerSlice) map[string]v1alpha1.PlaybookRun {
	sorted := append([]LedgerSlice(nil), slices...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	out := map[string]v1alpha1.PlaybookRun{}
	for _, s := range sorted {
		for _, r := range s.Runs {
			if _, ok := out[r.UserID]; !ok {
				out[r.UserID] = r
			}
		}
	}
	return out
}

// PlanLedger places changed runs: a user's record is rewritten in the slice that
// holds it; new users go into slices already being written, then into the one
// clean slice they all fit in, then into new slices of at most max runs.
func PlanLedger(existing []LedgerSlice, changed map[string]v1alpha1.PlaybookRun, max int) LedgerPlan {
	return PlanLedgerAt(existing, changed, max, holders(existing, changed))
}

// holders finds, by a walk over every run, the slice that holds each changed
// user's record: the first by name, as Runs reads.
func holders(existing []LedgerSlice, changed map[string]v1alpha1.PlaybookRun) map[string]string {
	sorted := append([]LedgerSlice(nil), existing...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	out := map[string]string{}
	for _, s := range sorted {
		for _, r := range s.Runs {
			if _, ok := changed[r.UserID]; ok {
				if _, found := out[r.UserID]; !found {
					out[r.UserID] = s.Name
				}
			}
		}
	}
	return out
}

// PlanLedgerAt is PlanLedger told which slice holds each changed user's
// record (Book.Holders finds them by search): it copies and reads only those
// slices, so a pass's ledger plan costs the change, not the ledger's size.
func PlanLedgerAt(existing []LedgerSlice, changed map[string]v1alpha1.PlaybookRun, max int, holder map[string]string) LedgerPlan {
	if max < 1 {
		max = 1
	}
	sorted := append([]LedgerSlice(nil), existing...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	held := map[string]bool{}
	for _, name := range holder {
		held[name] = true
	}
	placed := map[string]bool{}
	dirty := make([]bool, len(sorted))
	for i := range sorted {
		if !held[sorted[i].Name] {
			continue
		}
		runs := append([]v1alpha1.PlaybookRun(nil), sorted[i].Runs...)
		for j, r := range runs {
			if c, ok := changed[r.UserID]; ok && !placed[r.UserID] && holder[r.UserID] == sorted[i].Name {
				runs[j] = c
				placed[r.UserID] = true
				dirty[i] = true
			}
		}
		sorted[i].Runs = runs
	}
	var fresh []v1alpha1.PlaybookRun
	for _, u := range sortedKeys(changed) {
		if !placed[u] {
			fresh = append(fresh, changed[u])
		}
	}
	for i := range sorted {
		if dirty[i] && len(fresh) > 0 {
			n := min(max-len(sorted[i].Runs), len(fresh))
			if n > 0 {
				sorted[i].Runs = append(sorted[i].Runs, fresh[:n]...)
				fresh = fresh[n:]
			}
		}
	}
	if len(fresh) > 0 {
		if i := roomiest(sorted, dirty, len(fresh), max); i >= 0 {
			// A fresh array: the slice's own is the cache's (or the caller's).
			sorted[i].Runs = append(append(make([]v1alpha1.PlaybookRun, 0, len(sorted[i].Runs)+len(fresh)), sorted[i].Runs...), fresh...)
			dirty[i], fresh = true, nil
		}
	}
	var plan LedgerPlan
	for len(fresh) > 0 {
		n := min(max, len(fresh))
		plan.Create = append(plan.Create, fresh[:n])
		fresh = fresh[n:]
	}
	for i, s := range sorted {
		if dirty[i] {
			sort.Slice(s.Runs, func(a, b int) bool { return s.Runs[a].UserID < s.Runs[b].UserID })
			plan.Update = append(plan.Update, s)
		}
	}
	return plan
}

// roomiest is the clean slice with the most room that fits n more runs, or -1.
func roomiest(slices []LedgerSlice, dirty []bool, n, max int) int {
	best, room := -1, n-1
	for i, s := range slices {
		if r := max - len(s.Runs); !dirty[i] && r > room {
			best, room = i, r
		}
	}
	return best
}

// LedgerName is the name of a new PlaybookProgress slice of a playbook: its
// name and the first ordinal no slice takes. A fixed name, not GenerateName:
// when the response to a Create is lost (a timeout) and the pass is retried
// before the cache shows the slice, the retry asks for the same name and gets
// AlreadyExists, instead of creating a second slice that records the same
// users' runs (whose Jobs, batched differently, could launch them twice).
// Playbook names are at most 63 characters, so the name fits.
func LedgerName(playbook string, taken func(name string) bool) string {
	for i := 1; ; i++ {
		if name := fmt.Sprintf("%s-runs-%d", playbook, i); !taken(name) {
			return name
		}
	}
}
