package playbook

import (
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

type sliceKey struct{ persona, name string }

// kind is what changedSlices needs to know of one kind of slice (S) and its
// items (T): membership slices and members, ledger slices and runs.
type kind[S, T any] struct {
	key     func(S) sliceKey
	version func(S) string
	items   func(S) []T
	id      func(T) string
	same    func(a, b T) bool
}

var (
	memberSlices = kind[MemberSlice, v1alpha1.MembershipEntry]{
		key:     func(s MemberSlice) sliceKey { return sliceKey{s.Persona, s.Name} },
		version: func(s MemberSlice) string { return s.Version },
		items:   func(s MemberSlice) []v1alpha1.MembershipEntry { return s.Members },
		id:      func(m v1alpha1.MembershipEntry) string { return m.UserID },
		same: func(a, b v1alpha1.MembershipEntry) bool {
			return a.AccountID == b.AccountID && a.EnteredAt.Equal(&b.EnteredAt)
		},
	}
	runSlices = kind[RunSlice, v1alpha1.PlaybookRun]{
		key:     func(s RunSlice) sliceKey { return sliceKey{name: s.Name} },
		version: func(s RunSlice) string { return s.Version },
		items:   func(s RunSlice) []v1alpha1.PlaybookRun { return s.Runs },
		id:      func(r v1alpha1.PlaybookRun) string { return r.UserID },
		same:    func(a, b v1alpha1.PlaybookRun) bool { return equality.Semantic.DeepEqual(a, b) },
	}
)

// changedSlices adds to users those whose item differs between the slices a
// book holds (held(i) for i < n, found by at) and the slices now, reading
// only slices whose version changed or that came or went. It returns the
// changed slices the book holds (index → the slice now), and whether the set
// of slices is the same (so they can be replaced in place).
func changedSlices[S, T any](k kind[S, T], n int, held func(int) S, at map[sliceKey]int, now []S,
	users map[string]struct{}) (map[int]S, bool) {
	changed := map[int]S{}
	seen := 0
	for _, s := range now {
		var before []T
		if i, ok := at[k.key(s)]; ok {
			seen++
			if k.version(held(i)) == k.version(s) {
				continue
			}
			before, changed[i] = k.items(held(i)), s
		}
		diff(before, k.items(s), users, k.id, k.same)
	}
	if seen < n { // slices went: their items with them
		present := make(map[sliceKey]bool, len(now))
		for _, s := range now {
			present[k.key(s)] = true
		}
		for i := range n {
			if !present[k.key(held(i))] {
				diff(k.items(held(i)), nil, users, k.id, k.same)
			}
		}
	}
	return changed, seen == n && len(now) == n
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
