package playbook

import (
	"encoding/binary"
	"reflect"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// TestJobNameUnambiguous: no id makes one launch hash like another.
func TestJobNameUnambiguous(t *testing.T) {
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	once := func(u string) string { return EntryKey(true, u, "p", at) }
	every := func(u, p string) string { return EntryKey(false, u, p, at) }
	tests := []struct {
		name string
		a, b []string
	}{
		{"a user with a NUL and a batch of two", []string{"a\x00b"}, []string{"a", "b"}},
		{"Once keys: a user with a NUL and a batch of two", []string{once("a\x00b")}, []string{once("a"), once("b")}},
		{"an EveryEntry key and a Once batch spelling it out", []string{every("u", "p")},
			[]string{once("u"), once("p"), once(at.Format(time.RFC3339))}},
		{"an EveryEntry key and a Once key of the same user", []string{every("u", "p")}, []string{once("u")}},
		{"EveryEntry: the user/persona boundary moved", []string{every("u\x00x", "p")}, []string{every("u", "x\x00p")}},
		{"the empty batch and a batch of one empty key", nil, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if JobName("pb", "uid", "step", tt.a) == JobName("pb", "uid", "step", tt.b) {
				t.Errorf("%q and %q give the same Job name", tt.a, tt.b)
			}
		})
	}
	// Nor can a key or step absorb the step or UID.
	if JobName("pb", "uid", "s\x00x", nil) == JobName("pb", "uid", "s", []string{"x"}) {
		t.Error("the step and the first key run together")
	}
}

// TestJobNameGolden pins today's names: a change of the hash input changes
// every name a new launch gets, which must be deliberate (see JobName).
func TestJobNameGolden(t *testing.T) {
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct{ keys []string }{
		{[]string{EntryKey(true, "u1", "p", at)}},
		{[]string{EntryKey(false, "u1", "at-risk", at), EntryKey(false, "u2", "at-risk", at)}},
	} {
		got := JobName("onboarding", "6f9619ff-8b86-d011-b42d-00c04fc964ff", "welcome", tt.keys)
		if want := goldenJobNames[len(tt.keys)]; got != want {
			t.Errorf("JobName(%q) = %q, want %q", tt.keys, got, want)
		}
	}
}

var goldenJobNames = map[int]string{
	1: "onboarding-welcome-cd7fnq2aqfgphkvk",
	2: "onboarding-welcome-qa4wzm2ybmflsdgb",
}

// decodeHashInput inverts hashInput; it fails on input hashInput cannot make.
func decodeHashInput(b []byte) ([]string, bool) {
	var parts []string
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, false
		}
		n := binary.BigEndian.Uint64(b)
		b = b[8:]
		if n > uint64(len(b)) {
			return nil, false
		}
		parts = append(parts, string(b[:n]))
		b = b[n:]
	}
	return parts, true
}

// FuzzHashInput: the encoding decodes back to the same parts, so two
// different part lists never share a hash input.
func FuzzHashInput(f *testing.F) {
	f.Add("a\x00b", "", "c")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, parts := range [][]string{{a}, {a, b}, {a, b, c}} {
			got, ok := decodeHashInput(hashInput(parts))
			if !ok || !reflect.DeepEqual(got, parts) {
				t.Fatalf("hashInput(%q) decodes to %q, %v", parts, got, ok)
			}
		}
	})
}

// TestRecordedJobNamesOutliveAHashChange: a run recorded before an upgrade
// that changed JobName keeps its recorded Job: the planner re-creates a
// missing one under the recorded name (never a second Job under a new name)
// and follows its outcome by that name.
func TestRecordedJobNamesOutliveAHashChange(t *testing.T) {
	entered := t0.Add(-10 * time.Minute)
	const legacy = "onboard-a-a6ch4up27cqk33id" // the old NUL-joined hash's name for u1 (Once), step a
	in := Input{Spec: spec("a", "b"), Members: []Member{member("u1", entered)}, Limits: open(),
		Runs: map[string]v1alpha1.PlaybookRun{"u1": running("u1", "a", legacy, entered)}}
	p := Compute(in)
	if len(p.Launch) != 1 || p.Launch[0].Job != legacy || p.Launch[0].New {
		t.Fatalf("launches %+v, want the recorded Job %s re-created, nothing new", p.Launch, legacy)
	}
	in.Jobs = map[string]Job{legacy: {Name: legacy, Succeeded: true, Held: true}}
	p = Compute(in)
	if len(p.Launch) != 1 || p.Launch[0].Runs[0].Step != "b" || p.Launch[0].Job == legacy {
		t.Fatalf("launches %+v, want step b after the recorded Job succeeded", p.Launch)
	}
}
