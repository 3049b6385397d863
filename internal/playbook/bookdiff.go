package playbook

import (
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

type sliceKey struct{ persona, name string }

// changedMembers adds to users those whose entry differs between the slices
// the book holds and the slices now, reading only slices whose version
// changed or that came or went. It returns the changed slices the book holds
// (index in b.members → the slice now), and whether the set of slices is the
// same (so they can be replaced in place).
func (b *Book) changedMembers(now []MemberSlice, users map[string]struct{}) (map[int]MemberSlice, bool) {
	changed := map[int]MemberSlice{}
	seen := 0
	for _, s := range now {
		i, ok := b.mAt[sliceKey{s.Persona, s.Name}]
		if ok {
			seen++
		}
		var before []v1alpha1.MembershipEntry
		if ok {
			if b.members[i].Version == s.Version {
				continue
			}
			before, changed[i] = b.members[i].Members, s
		}
		diff(before, s.Members, users, entryID, sameEntryOf)
	}
	if seen < len(b.members) { // slices went: their members left
		present := make(map[sliceKey]bool, len(now))
		for _, s := range now {
			present[sliceKey{s.Persona, s.Name}] = true
		}
		for _, s := range b.members {
			if !present[sliceKey{s.Persona, s.Name}] {
				diff(s.Members, nil, users, entryID, sameEntryOf)
			}
		}
	}
	return changed, seen == len(b.members) && len(now) == len(b.members)
}

func entryID(m v1alpha1.MembershipEntry) string { return m.UserID }

func sameEntryOf(a, b v1alpha1.MembershipEntry) bool {
	return a.AccountID == b.AccountID && a.EnteredAt.Equal(&b.EnteredAt)
}

// changedRuns is changedMembers for the ledger's slices.
func (b *Book) changedRuns(now []RunSlice, users map[string]struct{}) (map[int]RunSlice, bool) {
	changed := map[int]RunSlice{}
	seen := 0
	for _, s := range now {
		i, ok := b.rAt[s.Name]
		if ok {
			seen++
		}
		var before []v1alpha1.PlaybookRun
		if ok {
			if b.ledger[i].Version == s.Version {
				continue
			}
			before, changed[i] = b.ledger[i].Runs, s
		}
		diff(before, s.Runs, users, runID, sameRun)
	}
	if seen < len(b.ledger) {
		present := make(map[string]bool, len(now))
		for _, s := range now {
			present[s.Name] = true
		}
		for _, s := range b.ledger {
			if !present[s.Name] {
				diff(s.Runs, nil, users, runID, sameRun)
			}
		}
	}
	return changed, seen == len(b.ledger) && len(now) == len(b.ledger)
}

func runID(r v1alpha1.PlaybookRun) string { return r.UserID }

func sameRun(a, b v1alpha1.PlaybookRun) bool { return equality.Semantic.DeepEqual(a, b) }

// diff adds to users every id whose item is not the same in before and after
// (present in one only, changed, or found twice in either: a hand edit, for
// which the user is looked at again).
func diff[T any](before, after []T, users map[string]struct{}, id func(T) string, same func(a, b T) bool) {
	was := make(map[string]T, len(before))
	for _, it := range before {
		if _, dup := was[id(it)]; dup {
			users[id(it)] = struct{}{}
		}
		was[id(it)] = it
	}
	seen := make(map[string]bool, len(after))
	for _, it := range after {
		u := id(it)
		if b, ok := was[u]; !ok || seen[u] || !same(b, it) {
			users[u] = struct{}{}
		}
		seen[u] = true
	}
	for u := range was {
		if !seen[u] {
			users[u] = struct{}{}
		}
	}
}
