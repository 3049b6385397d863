package playbook

import (
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// changedMembers lists the users whose entry differs between the slices a
// book saw and the slices now: only slices whose version changed (or that
// came or went) are read.
func changedMembers(old []memberSlice, now []MemberSlice) map[string]struct{} {
	type key struct{ persona, name string }
	prev := make(map[key][]v1alpha1.MembershipEntry, len(old))
	version := make(map[key]string, len(old))
	for _, s := range old {
		k := key{s.Persona, s.Name}
		prev[k], version[k] = s.Members, s.Version
	}
	users := map[string]struct{}{}
	for _, s := range now {
		k := key{s.Persona, s.Name}
		before, seen := prev[k]
		delete(prev, k)
		if !seen || version[k] != s.Version {
			diff(before, s.Members, users, func(m v1alpha1.MembershipEntry) string { return m.UserID },
				func(a, b v1alpha1.MembershipEntry) bool {
					return a.AccountID == b.AccountID && a.EnteredAt.Equal(&b.EnteredAt)
				})
		}
	}
	for _, gone := range prev {
		diff(gone, nil, users, func(m v1alpha1.MembershipEntry) string { return m.UserID }, nil)
	}
	return users
}

// changedRuns lists the users whose record differs between the ledger slices
// a book saw and the slices now, reading only the slices that changed.
func changedRuns(old []runSlice, now []RunSlice) map[string]struct{} {
	prev := make(map[string]runSlice, len(old))
	for _, s := range old {
		prev[s.Name] = s
	}
	users := map[string]struct{}{}
	for _, s := range now {
		before, seen := prev[s.Name]
		delete(prev, s.Name)
		if !seen || before.Version != s.Version {
			diff(before.Runs, s.Runs, users, func(r v1alpha1.PlaybookRun) string { return r.UserID },
				func(a, b v1alpha1.PlaybookRun) bool { return equality.Semantic.DeepEqual(a, b) })
		}
	}
	for _, gone := range prev {
		diff(gone.Runs, nil, users, func(r v1alpha1.PlaybookRun) string { return r.UserID }, nil)
	}
	return users
}

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
