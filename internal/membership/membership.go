package membership

import (
	"sort"
	"time"
)

// Member is one user in a persona.
type Member struct {
	UserID    string
	AccountID string
	// EnteredAt is when the user last entered; it survives restarts because it
	// is stored in the slices.
	EnteredAt time.Time
}

// Slice is one stored slice: its object name and members.
type Slice struct {
	Name    string
	Members []Member
}

// Change is the difference between two memberships.
type Change struct {
	Entered []Member // sorted by user id
	Exited  []Member // sorted by user id
}

// Diff compares the stored members with the users that match now (user id →
// account id). Members who stay keep their EnteredAt; new ones enter at now.
// It returns the desired membership and the change.
func Diff(stored map[string]Member, matching map[string]string, now time.Time) (map[string]Member, Change) {
	// Stored times have second precision (metav1.Time): use it from the start so
	// a member reads back exactly as written.
	now = now.UTC().Truncate(time.Second)
	desired := make(map[string]Member, len(matching))
	var ch Change
	for uid, account := range matching {
		m, ok := stored[uid]
		if !ok {
			m = Member{UserID: uid, AccountID: account, EnteredAt: now}
			ch.Entered = append(ch.Entered, m)
		}
		m.AccountID = account
		desired[uid] = m
	}
	for uid, m := range stored {
		if _, ok := matching[uid]; !ok {
			ch.Exited = append(ch.Exited, m)
		}
	}
	sortMembers(ch.Entered)
	sortMembers(ch.Exited)
	return desired, ch
}

// Members flattens slices into a map by user id. A user found in two slices
// (left by an interrupted write) keeps the earliest entry.
func Members(slices []Slice) map[string]Member {
	n := 0
	for _, s := range slices {
		n += len(s.Members)
	}
	out := make(map[string]Member, n) // sized once: a persona may hold a million members

	for _, s := range slices {
		for _, m := range s.Members {
			if prev, ok := out[m.UserID]; ok && !m.EnteredAt.Before(prev.EnteredAt) {
				continue
			}
			out[m.UserID] = m
		}
	}
	return out
}

func sortMembers(ms []Member) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].UserID < ms[j].UserID })
}
