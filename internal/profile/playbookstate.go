package profile

import (
	"maps"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
)

// PlaybooksSource is the name under which a namespace holds the built-in
// user.playbooks contribution. DataSource names are DNS-1123 subdomains
// (lower-case alphanumerics, '-' and '.'), so no DataSource can be called this.
const PlaybooksSource = "builtin:playbooks"

// PlaybookState is where one user's run of one Playbook stands. Rules read it
// as user.playbooks["<playbook>"], a map with:
//
//	phase    string     Pending, Running, Succeeded or Failed
//	step     string     the current step; the last one run once the run finished
//	overdue  bool       the current step is past its dueAfter and has not succeeded
//	dueAt    timestamp  when the current step is (or was) due; only while the run
//	                    is Pending or Running and the step has a dueAfter
type PlaybookState struct {
	Phase   string
	Step    string
	Overdue bool
	DueAt   time.Time // zero: no deadline
}

// PlaybookStateFields are the fields of a user.playbooks entry and their
// types: the rule compiler declares the entry as an object of these fields, so
// user.playbooks["x"].overdue is a bool and a misspelt field is a compile error.
var PlaybookStateFields = map[string]attr.Type{
	"phase": attr.String, "step": attr.String, "overdue": attr.Bool, "dueAt": attr.Timestamp,
}

// Field returns one field as a CEL value; false for dueAt without a deadline.
func (s PlaybookState) Field(name string) (ref.Val, bool) {
	switch name {
	case "phase":
		return types.String(s.Phase), true
	case "step":
		return types.String(s.Step), true
	case "overdue":
		return types.Bool(s.Overdue), true
	case "dueAt":
		return types.Timestamp{Time: s.DueAt.UTC()}, !s.DueAt.IsZero()
	}
	return nil, false
}

// playbookEntry is a PlaybookState as a CEL value: a plain CEL map of its
// fields, so dynamic access, equality, JSON (PERSONA_PROFILE) and any reader
// that knows only maps work, whose Value is the state itself: a select on the
// entry as the rule compiler types it reads the state (see rule's provider).
type playbookEntry struct {
	traits.Mapper
	state PlaybookState
}

// Value implements ref.Val.
func (e playbookEntry) Value() any { return e.state }

func (s PlaybookState) equal(o PlaybookState) bool {
	return s.Phase == o.Phase && s.Step == o.Step && s.Overdue == o.Overdue && s.DueAt.Equal(o.DueAt)
}

// value is the state as the map rules see.
func (s PlaybookState) value() map[string]any {
	m := map[string]any{"phase": s.Phase, "step": s.Step, "overdue": s.Overdue}
	if !s.DueAt.IsZero() {
		m["dueAt"] = s.DueAt.UTC()
	}
	return m
}

// PublishPlaybook makes states (user id → state) the playbook's entries of
// user.playbooks, replacing what it published before; users without a state
// lose the playbook's entry. It reports whether anything changed. An identical
// publish leaves the store, its generation and its snapshots alone and
// notifies nobody: a playbook pass that changed nothing must not re-evaluate
// personas, whose evaluation would trigger another playbook pass.
func (n *Namespace) PublishPlaybook(name string, states map[string]PlaybookState) bool {
	changed := n.publishPlaybook(name, states)
	if changed {
		n.notify()
	}
	return changed
}

func (n *Namespace) publishPlaybook(name string, states map[string]PlaybookState) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	old, published := n.playbooks[name]
	if published && maps.EqualFunc(old, states, PlaybookState.equal) {
		return false
	}
	clone := make(map[string]PlaybookState, len(states))
	maps.Copy(clone, states)
	n.playbooks[name] = clone
	// A first publish with no runs changes no profile, only PlaybookPublished:
	// it still counts as a change, for the personas waiting on it. It adds
	// the built-in source (empty) if this is the namespace's first playbook,
	// so that the first run to come changes only its user's profile.
	if !published || len(old) > 0 || len(states) > 0 {
		n.rebuildPlaybooks()
	}
	return true
}

// RemovePlaybook drops a deleted playbook's entries. It reports whether the
// playbook had published anything.
func (n *Namespace) RemovePlaybook(name string) bool {
	changed := n.removePlaybook(name)
	if changed {
		n.notify()
	}
	return changed
}

func (n *Namespace) removePlaybook(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	old, published := n.playbooks[name]
	if !published {
		return false
	}
	delete(n.playbooks, name)
	if len(old) > 0 {
		n.rebuildPlaybooks()
	}
	return true
}

// PlaybookPublished reports whether the playbook published its state since the
// store was created (the manager started): until then user.playbooks lacks it.
func (n *Namespace) PlaybookPublished(name string) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	_, ok := n.playbooks[name]
	return ok
}

// PlaybookPublished is Namespace.PlaybookPublished for the namespace being read
// (Namespace's would take the read lock a second time).
func (v *View) PlaybookPublished(name string) bool {
	defer v.rlock()()
	_, ok := v.n.playbooks[name]
	return ok
}

// rebuildPlaybooks regenerates the PlaybooksSource contribution from every
// playbook's states: one row per user with a run, holding the map of its
// playbooks. It costs in proportion to the users with runs plus the namespace,
// as a DataSource sync does. The caller holds n.mu for writing.
func (n *Namespace) rebuildPlaybooks() {
	byUser := map[string]map[ref.Val]ref.Val{}
	for pb, states := range n.playbooks {
		for uid, st := range states {
			m, ok := byUser[uid]
			if !ok {
				m = map[ref.Val]ref.Val{}
				byUser[uid] = m
			}
			m[types.String(pb)] = playbookEntry{Mapper: attr.ToCEL(st.value()).(traits.Mapper), state: st}
		}
	}
	// The source stays while a playbook is published, empty when no run is
	// left: adding or removing a source changes how every profile merges
	// (the journal says All, and every persona evaluates every profile),
	// where a run that comes or goes changes one profile.
	if len(n.playbooks) == 0 {
		n.remove(PlaybooksSource)
		return
	}
	d := &SourceData{
		Name: PlaybooksSource, Builtin: true, Entity: v1alpha1.EntityUser,
		UserDecls: []attr.Decl{{Name: attr.PlaybooksAttr, Type: attr.Map}},
		Users:     make(map[string]*row, len(byUser)),
		Records:   int64(len(byUser)),
	}
	for uid, m := range byUser {
		d.Users[uid] = plainRow("", []any{types.NewRefValMap(types.DefaultTypeAdapter, m)}, 0)
	}
	n.apply(d)
}
