package preview

import (
	"sort"

	"github.com/usersuccess/persona-operator/internal/queryapi"
)

// Diff compares the users a rule matches now (user id → account id) with the
// members recorded in the live persona's slices. Both results are sorted.
func Diff(recorded []queryapi.Member, matching map[string]string) (entered, exited []string) {
	inside := make(map[string]bool, len(recorded))
	for _, m := range recorded {
		inside[m.UserID] = true
		if _, still := matching[m.UserID]; !still {
			exited = append(exited, m.UserID)
		}
	}
	for id := range matching {
		if !inside[id] {
			entered = append(entered, id)
		}
	}
	sort.Strings(entered)
	exited = dedupe(exited)
	return entered, exited
}

// dedupe sorts ids and drops repeats (a user recorded in two slices, only
// possible if someone edited them by hand).
func dedupe(ids []string) []string {
	sort.Strings(ids)
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out
}

// SortedIDs returns the keys of matching, sorted.
func SortedIDs(matching map[string]string) []string {
	ids := make([]string, 0, len(matching))
	for id := range matching {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Sample is the first n of sorted ids (never nil, so JSON shows []).
func Sample(ids []string, n int) []string {
	if n > len(ids) {
		n = len(ids)
	}
	return append([]string{}, ids[:n]...)
}

// Change is a count and a sample of sorted ids.
func Change(ids []string, n int) queryapi.Change {
	return queryapi.Change{Count: len(ids), Sample: Sample(ids, n)}
}
