package profile

// The journal records which users and accounts each change of a namespace
// touched, so that a persona evaluated at generation g re-evaluates only the
// profiles changed since (Changes), not all of them: a sync that changes k
// rows of a million-user namespace then costs each persona k evaluations.
//
// It is bounded: it holds at most maxJournalKeys keys, dropping the oldest
// changes first; a reader asking about a generation the journal no longer
// covers is told that everything may have changed, and evaluates in full.

// maxJournalKeys bounds the keys the journal holds (a key is a string header
// sharing the store's own string: 16 bytes each).
const maxJournalKeys = 1 << 18

// Changes is what changed in a namespace since some generation.
type Changes struct {
	// All is true when the journal cannot tell (the generation is older than
	// what it holds, or a change touched the merge of every profile: a source
	// added, removed, or declaring other attributes).
	All bool
	// Users and Accounts are the keys whose rows changed, each at most once.
	Users, Accounts []string
	// vacated are the user positions freed meanwhile (positions.go).
	vacated []int32
}

// Vacated are the user positions freed meanwhile: a user that held one is
// in Users, and a user now there (positions are reused) too.
func (c Changes) Vacated() []int32 { return c.vacated }

// Len is the number of keys changed.
func (c Changes) Len() int { return len(c.Users) + len(c.Accounts) }

type journalEntry struct {
	gen             uint64
	users, accounts []string
	vacated         []int32
}

type journal struct {
	// base: Changes(g) is answerable for g >= base.
	base    uint64
	entries []journalEntry
	keys    int
}

// record appends the change that made generation gen.
func (j *journal) record(gen uint64, all bool, users, accounts []string, vacated []int32) {
	if all || len(users)+len(accounts)+len(vacated) > maxJournalKeys {
		// Nothing before this change matters to a reader older than it.
		j.entries, j.keys = j.entries[:0], 0
		j.base = gen
		return
	}
	j.entries = append(j.entries, journalEntry{gen: gen, users: users, accounts: accounts, vacated: vacated})
	j.keys += len(users) + len(accounts) + len(vacated)
	drop := 0
	for j.keys > maxJournalKeys {
		e := j.entries[drop]
		j.keys -= len(e.users) + len(e.accounts) + len(e.vacated)
		j.base = e.gen
		drop++
	}
	if drop > 0 {
		j.entries = append(j.entries[:0], j.entries[drop:]...)
	}
}

// since returns the changes after generation gen, up to now.
func (j *journal) since(gen uint64) Changes {
	if gen < j.base {
		return Changes{All: true}
	}
	var c Changes
	seenU, seenA := map[string]bool{}, map[string]bool{}
	for _, e := range j.entries {
		if e.gen <= gen {
			continue
		}
		c.Users = appendNew(c.Users, seenU, e.users)
		c.Accounts = appendNew(c.Accounts, seenA, e.accounts)
		c.vacated = append(c.vacated, e.vacated...)
	}
	return c
}

func appendNew(out []string, seen map[string]bool, keys []string) []string {
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// Changes returns what changed in the namespace after generation gen (as
// Generation returned it), up to the view's generation.
func (v *View) Changes(gen uint64) Changes {
	defer v.rlock()()
	if gen == v.n.gen {
		return Changes{}
	}
	if gen > v.n.gen {
		return Changes{All: true} // a generation of another store
	}
	return v.n.journal.since(gen)
}

// UsersOfAccounts returns the profiles whose account is one of ids: the
// users an account change reaches. It walks the namespace's users once.
func (v *View) UsersOfAccounts(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	defer v.rlock()()
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var out []string
	for uid, e := range v.n.users {
		if aid := accountID(v.plan, e); aid != "" && want[aid] {
			out = append(out, uid)
		}
	}
	return out
}

// UsersKnown is the number of users the namespace holds rows for, profiles
// and users known only from signals: an upper bound of the view's profiles
// that, unlike Len, builds no snapshot.
func (v *View) UsersKnown() int {
	defer v.rlock()()
	return len(v.n.users)
}

// UsersAdded says how many users the namespace holds, and how many new ones
// applying a sync's data (or, for an incremental sync, its delta) would add:
// keys it holds that no source holds yet. The cluster-wide cap on users per
// namespace is checked with it before anything is applied.
func (n *Namespace) UsersAdded(d *SourceData, delta *Delta) (known, added int) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	known = len(n.users)
	switch {
	case delta != nil:
		for key, op := range delta.users {
			if _, ok := n.users[key]; !ok && !op.del {
				added++
			}
		}
	case d != nil:
		for key := range d.Users {
			if _, ok := n.users[key]; !ok {
				added++
			}
		}
	}
	return known, added
}
