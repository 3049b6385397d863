package ingest

import (
	"context"
	"time"

	"github.com/usersuccess/persona-operator/internal/eventstore"
	"github.com/usersuccess/persona-operator/internal/tracking"
)

// seedOverlap is how long after a user's state was read from the store a
// written call may still arrive that the read already saw: its request
// committed before the read but reached the re-computation loop after it.
// It exceeds the event store's commit timeout (30 s).
const seedOverlap = time.Minute

// maxStates bounds the users whose state one source keeps in memory (a state
// holds each call inside a window: about 64 bytes per call and aggregate).
// Past it, a tenth of them, arbitrary ones, are dropped: a dropped user's
// state is read from the store again at its next event or edge, as after a
// restart.
const maxStates = 200_000

// userStates are the aggregate states of one source's users, kept so an
// accepted event updates its user's aggregates without reading the user's
// history again. A user's state is read from the event store the first time
// it is needed (after a restart: the first event or edge of the user), so it
// always equals what the store holds; erasure and pruning forget states,
// which are read again. Used under the namespace's lock only.
type userStates struct {
	aggs   []eventstore.Aggregate
	byUser map[string]*userState
	max    int
}

type userState struct {
	agg *eventstore.UserAggregates
	// recent are the messageIds the store read saw among the calls received
	// within seedOverlap of it, until recentUntil: a late-arriving copy of
	// one of them is not added twice.
	recent      map[string]struct{}
	recentUntil time.Time
}

func newUserStates(aggs []eventstore.Aggregate) *userStates {
	return &userStates{aggs: aggs, byUser: map[string]*userState{}, max: maxStates}
}

// create gives users the store did not know before a write an empty state:
// the write's calls, added next, are all their events so far.
func (u *userStates) create(users []string) {
	for _, id := range users {
		if u.byUser[id] == nil {
			u.byUser[id] = &userState{agg: eventstore.NewUserAggregates(u.aggs)}
		}
	}
}

// bound drops states past max, down to nine tenths of it. Called before a
// pass adds calls and loads states, never during one: the pass's users keep
// theirs until it is done (a pass may take the count past max for a while).
func (u *userStates) bound() {
	if len(u.byUser) <= u.max {
		return
	}
	for id := range u.byUser {
		if len(u.byUser) <= u.max*9/10 {
			return
		}
		delete(u.byUser, id)
	}
}

// add adds written calls to their users' states. A user without a state is
// skipped: the store read that builds it includes the call.
func (u *userStates) add(calls []tracking.Call, now time.Time) {
	for _, c := range calls {
		st := u.byUser[c.UserID]
		if st == nil {
			continue
		}
		if st.recent != nil {
			if now.After(st.recentUntil) {
				st.recent = nil
			} else if _, ok := st.recent[c.MessageID]; ok {
				continue
			}
		}
		st.agg.Add(eventstore.EventOf(c))
	}
}

// load builds, from the store, the states of the users that have none.
func (u *userStates) load(ctx context.Context, store *eventstore.Store, namespace string, users []string, now time.Time) error {
	var missing []string
	for _, id := range users {
		if u.byUser[id] == nil {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	read := make(map[string]*userState, len(missing))
	for _, id := range missing {
		read[id] = &userState{agg: eventstore.NewUserAggregates(u.aggs), recentUntil: now.Add(seedOverlap)}
	}
	err := store.UserEvents(ctx, namespace, missing, func(user string, e eventstore.Event, received time.Time) error {
		st := read[user]
		st.agg.Add(e)
		if !received.Before(now.Add(-seedOverlap)) {
			if st.recent == nil {
				st.recent = map[string]struct{}{}
			}
			st.recent[e.MessageID] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return err // nothing kept: the next pass reads them again
	}
	for id, st := range read {
		u.byUser[id] = st
	}
	return nil
}

// get is a user's state (nil: not loaded).
func (u *userStates) get(user string) *eventstore.UserAggregates {
	if st := u.byUser[user]; st != nil {
		return st.agg
	}
	return nil
}

// forget drops users' states (erased: read again from the store).
func (u *userStates) forget(users ...string) {
	for _, id := range users {
		delete(u.byUser, id)
	}
}

// forgetAll drops every state (events were pruned).
func (u *userStates) forgetAll() { clear(u.byUser) }

// len is how many users have a state.
func (u *userStates) len() int { return len(u.byUser) }
