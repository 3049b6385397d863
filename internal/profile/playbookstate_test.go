package profile

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/internal/attr"
)

var due = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func TestPublishPlaybookShapeAndVisibility(t *testing.T) {
	n := NewStore().Namespace("ns")
	n.Apply(source(t, "crm", 0, usersSpec, map[string]any{"id": "u1", "nps": "9"}, map[string]any{"id": "u2", "nps": "3"}))
	n.PublishPlaybook("onboarding", map[string]PlaybookState{
		"u1":    {Phase: "Running", Step: "nudge", Overdue: true, DueAt: due},
		"ghost": {Phase: "Pending", Step: "nudge"}, // no profile: the state makes none
	})
	n.PublishPlaybook("renewal", map[string]PlaybookState{"u1": {Phase: "Succeeded", Step: "call"}})

	tests := []struct {
		name    string
		sources []string
		uid     string
		want    any
	}{
		{"both playbooks, dueAt only where there is a deadline", nil, "u1", map[string]any{
			"onboarding": map[string]any{"phase": "Running", "step": "nudge", "overdue": true, "dueAt": due},
			"renewal":    map[string]any{"phase": "Succeeded", "step": "call", "overdue": false},
		}},
		{"a user without runs has no attribute", nil, "u2", nil},
		{"state alone makes no profile", nil, "ghost", "<no user>"},
		{"visible whatever the persona's source selection", []string{"crm"}, "u1", map[string]any{
			"onboarding": map[string]any{"phase": "Running", "step": "nudge", "overdue": true, "dueAt": due},
			"renewal":    map[string]any{"phase": "Succeeded", "step": "call", "overdue": false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := get(t, n, tt.sources, tt.uid, attr.PlaybooksAttr); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s.playbooks = %#v, want %#v", tt.uid, got, tt.want)
			}
		})
	}
	n.Read(nil, func(v *View) {
		if ids := v.UserIDs(); !reflect.DeepEqual(ids, []string{"u1", "u2"}) {
			t.Errorf("profiles = %v: playbook state must not add any", ids)
		}
	})
	if c := n.Conflicts(); len(c) != 0 {
		t.Errorf("conflicts = %v", c)
	}
}

func TestPublishPlaybookWritesOnlyChanges(t *testing.T) {
	n := NewStore().Namespace("ns")
	n.Apply(source(t, "crm", 0, usersSpec, map[string]any{"id": "u1"}))
	running := map[string]PlaybookState{"u1": {Phase: "Running", Step: "nudge", DueAt: due}}
	// Same instant in another location: equal, as the ledger's times round-trip.
	sameInstant := map[string]PlaybookState{"u1": {Phase: "Running", Step: "nudge", DueAt: due.In(time.FixedZone("x", 3600))}}
	overdue := map[string]PlaybookState{"u1": {Phase: "Running", Step: "nudge", Overdue: true, DueAt: due}}

	steps := []struct {
		name       string
		do         func() bool
		changed    bool
		generation bool // the store's generation moves (profiles changed)
	}{
		{"first publish without runs: the built-in source, empty", func() bool { return n.PublishPlaybook("pb", nil) }, true, true},
		{"again without runs", func() bool { return n.PublishPlaybook("pb", map[string]PlaybookState{}) }, false, false},
		{"a run appears", func() bool { return n.PublishPlaybook("pb", running) }, true, true},
		{"the same state again", func() bool { return n.PublishPlaybook("pb", sameInstant) }, false, false},
		{"the step becomes overdue", func() bool { return n.PublishPlaybook("pb", overdue) }, true, true},
		{"removing an unknown playbook", func() bool { return n.RemovePlaybook("other") }, false, false},
		{"removing the playbook", func() bool { return n.RemovePlaybook("pb") }, true, true},
	}
	for _, s := range steps {
		before := n.Generation()
		if got := s.do(); got != s.changed {
			t.Errorf("%s: changed = %v, want %v", s.name, got, s.changed)
		}
		if moved := n.Generation() != before; moved != s.generation {
			t.Errorf("%s: generation moved = %v, want %v", s.name, moved, s.generation)
		}
	}
	if n.PlaybookPublished("pb") {
		t.Error("pb still published after RemovePlaybook")
	}
	if _, _, ok := n.Loaded(PlaybooksSource); ok {
		t.Error("the built-in source stays after its last playbook was removed")
	}
	if got := get(t, n, nil, "u1", attr.PlaybooksAttr); got != nil {
		t.Errorf("u1.playbooks after removal = %v", got)
	}
}

func TestPublishPlaybookCopiesItsInput(t *testing.T) {
	n := NewStore().Namespace("ns")
	states := map[string]PlaybookState{"u1": {Phase: "Running", Step: "a"}}
	n.PublishPlaybook("pb", states)
	states["u1"] = PlaybookState{Phase: "Failed", Step: "a"}
	if !n.PublishPlaybook("pb", states) {
		t.Error("a caller's later edit of its map was taken for the published state")
	}
}

func TestSchemaAlwaysDeclaresPlaybooks(t *testing.T) {
	for name, s := range map[string]Schema{
		"no sources at all":         DeclaredSchema(nil),
		"declared sources":          DeclaredSchema([]*SourceData{source(t, "crm", 0, usersSpec)}),
		"empty namespace, no state": readSchema(NewStore().Namespace("ns")),
	} {
		if s.User[attr.PlaybooksAttr] != attr.Map {
			t.Errorf("%s: user.playbooks is %q, want Map", name, s.User[attr.PlaybooksAttr])
		}
	}
}

func readSchema(n *Namespace) (s Schema) {
	n.Read(nil, func(v *View) { s = v.Schema() })
	return s
}

func TestDeclaringPlaybooksIsAConflict(t *testing.T) {
	// The mapper rejects the name; a SourceData built without it still cannot
	// merge into the built-in attribute.
	n := NewStore().Namespace("ns")
	d := source(t, "crm", 100, usersSpec, map[string]any{"id": "u1", "nps": "1"})
	d.UserDecls = append(d.UserDecls, attr.Decl{Name: attr.PlaybooksAttr, Type: attr.Map})
	r := d.Users["u1"]
	vals := make([]any, r.len(), r.len()+1)
	for i := range vals {
		vals[i] = r.val(i)
	}
	var p packer
	d.Users["u1"] = p.pack(r.account(), append(vals, map[string]any{"x": "y"}), nil, r.hash)
	n.Apply(d)
	n.PublishPlaybook("pb", map[string]PlaybookState{"u1": {Phase: "Pending", Step: "a"}})
	if got := n.Conflicts()["crm"]; len(got) != 1 {
		t.Errorf("conflicts = %v, want crm's playbooks", got)
	}
	want := map[string]any{"pb": map[string]any{"phase": "Pending", "step": "a", "overdue": false}}
	if got := get(t, n, nil, "u1", attr.PlaybooksAttr); !reflect.DeepEqual(got, want) {
		t.Errorf("u1.playbooks = %#v, want the built-in %#v", got, want)
	}
}

func TestFeedCoalescesAndNeverBlocks(t *testing.T) {
	s := NewStore()
	f := s.Subscribe()
	defer f.Close()
	for range 100 { // far more changes than anyone reads: must not block
		s.Namespace("b").PublishPlaybook("pb", map[string]PlaybookState{"u": {Phase: "Running", Step: time.Now().String()}})
		s.Namespace("a").PublishPlaybook("pb", map[string]PlaybookState{"u": {Phase: "Running", Step: time.Now().String()}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if got := f.Next(ctx); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("Next = %v, want each namespace once", got)
	}
	s.Namespace("a").PublishPlaybook("pb", s.Namespace("a").playbooks["pb"]) // no change: no event
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if got := f.Next(short); got != nil {
		t.Errorf("Next after a no-op publish = %v, want nothing", got)
	}
	f.Close()
	s.Namespace("c").RemovePlaybook("pb") // nothing published there: no event either way
	s.Namespace("a").RemovePlaybook("pb")
	if len(f.pending) != 0 {
		t.Errorf("a closed feed still receives: %v", f.pending)
	}
}

// Once a playbook is published, runs that come and go change only their
// users' profiles: the built-in source stays (empty when no run is left), so
// the journal never says All for them and personas evaluate those users only.
func TestPlaybookRunsChangeOnlyTheirUsers(t *testing.T) {
	n := NewStore().Namespace("ns")
	n.Apply(source(t, "users", 0, usersSpec, map[string]any{"id": "u1"}, map[string]any{"id": "u2"}))
	n.PublishPlaybook("pb", nil)
	running := map[string]PlaybookState{"u1": {Phase: "Running", Step: "a"}}
	for _, step := range []struct {
		name   string
		states map[string]PlaybookState
	}{{"the first run", running}, {"the last run goes", nil}, {"a run again", running}} {
		gen := n.Generation()
		if !n.PublishPlaybook("pb", step.states) {
			t.Fatalf("%s: nothing changed", step.name)
		}
		var c Changes
		n.Read(nil, func(v *View) { c = v.Changes(gen) })
		if c.All || len(c.Users) != 1 || c.Users[0] != "u1" {
			t.Errorf("%s: changes %+v, want u1 only", step.name, c)
		}
	}
}
