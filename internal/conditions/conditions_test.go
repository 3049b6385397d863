package conditions

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"short", "abc", 10, "abc"},
		{"exact", "abcdef", 6, "abcdef"},
		{"cut", strings.Repeat("a", 40), 20, strings.Repeat("a", 20-len(TruncatedMarker)) + TruncatedMarker},
		// "é" is two bytes: a cut inside it backs off to the rune start.
		{"rune boundary", strings.Repeat("é", 20), 20, strings.Repeat("é", 2) + TruncatedMarker},
		{"tiny limit", strings.Repeat("a", 40), 3, TruncatedMarker},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Truncate(tc.in, tc.n)
			if got != tc.want {
				t.Fatalf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("not valid UTF-8: %q", got)
			}
		})
	}
}

func FuzzTruncate(f *testing.F) {
	f.Add("héllo wörld", 7)
	f.Add(strings.Repeat("日本", 100), 50)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < len(TruncatedMarker) || n > 1<<16 || !utf8.ValidString(s) {
			return
		}
		got := Truncate(s, n)
		if len(got) > n {
			t.Fatalf("len %d > %d", len(got), n)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 %q", got)
		}
		if len(s) <= n && got != s {
			t.Fatalf("cut a message that fits")
		}
		if len(s) > n && (!strings.HasSuffix(got, TruncatedMarker) || !strings.HasPrefix(s, strings.TrimSuffix(got, TruncatedMarker))) {
			t.Fatalf("cut %q is not a prefix plus the marker: %q", s, got)
		}
	})
}

func TestSetBoundsMessageAndSetsGeneration(t *testing.T) {
	var conds []metav1.Condition
	Set(&conds, 7, v1alpha1.ReadyCondition, metav1.ConditionFalse, "Broken", strings.Repeat("x", 1<<20))
	c := meta.FindStatusCondition(conds, v1alpha1.ReadyCondition)
	if c == nil || c.ObservedGeneration != 7 || c.Reason != "Broken" {
		t.Fatalf("condition = %+v", c)
	}
	if len(c.Message) > MaxMessageBytes || !strings.HasSuffix(c.Message, TruncatedMarker) {
		t.Fatalf("message of %d bytes, want at most %d with the marker", len(c.Message), MaxMessageBytes)
	}
}

func TestMarkStalled(t *testing.T) {
	conds := []metav1.Condition{{Type: v1alpha1.ReconcilingCondition, Status: metav1.ConditionTrue, Reason: "Progressing"}}
	err := fmt.Errorf("wrapped: %w", Stalledf(v1alpha1.ReasonInvalidRule, "spec.rule: %s", "undeclared reference"))
	s, ok := AsStalled(err)
	if !ok {
		t.Fatal("AsStalled did not find the Stalled error in the chain")
	}
	MarkStalled(&conds, 3, s, "membership is unchanged")
	stalled := meta.FindStatusCondition(conds, v1alpha1.StalledCondition)
	ready := meta.FindStatusCondition(conds, v1alpha1.ReadyCondition)
	if stalled == nil || stalled.Status != metav1.ConditionTrue || stalled.Reason != v1alpha1.ReasonInvalidRule ||
		stalled.Message != "spec.rule: undeclared reference" {
		t.Fatalf("Stalled = %+v", stalled)
	}
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != v1alpha1.ReasonInvalidRule ||
		ready.Message != "spec.rule: undeclared reference; membership is unchanged" || ready.ObservedGeneration != 3 {
		t.Fatalf("Ready = %+v", ready)
	}
	if meta.FindStatusCondition(conds, v1alpha1.ReconcilingCondition) != nil {
		t.Fatal("Reconciling kept on a stalled object")
	}
	if !StalledBy(conds, 3, "Other", v1alpha1.ReasonInvalidRule) || StalledBy(conds, 4, v1alpha1.ReasonInvalidRule) ||
		StalledBy(conds, 3, "Other") {
		t.Fatal("StalledBy does not match reason and generation")
	}
	if _, ok := AsStalled(errors.New("plain")); ok {
		t.Fatal("AsStalled found a Stalled error in a plain error")
	}
}

type obj struct {
	Metadata map[string]any `json:"metadata,omitempty"`
	Status   status         `json:"status"`
}

type status struct {
	Members    int64    `json:"members"`
	Total      int64    `json:"total,omitempty"`
	Next       string   `json:"next,omitempty"`
	LastChange *change  `json:"lastChange,omitempty"`
	Conditions []string `json:"conditions,omitempty"`
}

type change struct {
	Entered int64  `json:"entered"`
	Time    string `json:"time,omitempty"`
}

func TestStatusPatch(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after status
		rv            string
		want          string
	}{
		{"zero counts are sent even when unchanged", status{}, status{},
			"", `{"status":{"members":0}}`},
		{"dropped fields become null", status{Total: 3, Next: "t", Conditions: []string{"a"}}, status{Total: 3},
			"", `{"status":{"conditions":null,"members":0,"next":null,"total":3}}`},
		{"nested fields dropped become null", status{LastChange: &change{Entered: 1, Time: "t"}}, status{LastChange: &change{Entered: 2}},
			"", `{"status":{"lastChange":{"entered":2,"time":null},"members":0}}`},
		{"lists are replaced whole", status{Conditions: []string{"a", "b"}}, status{Conditions: []string{"b"}},
			"", `{"status":{"conditions":["b"],"members":0}}`},
		{"optimistic lock", status{}, status{Members: 5},
			"42", `{"metadata":{"resourceVersion":"42"},"status":{"members":5}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := StatusPatch(obj{Status: tc.before}, obj{Status: tc.after}, tc.rv)
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.want), &w); err != nil {
				t.Fatal(err)
			}
			gb, _ := json.Marshal(g)
			wb, _ := json.Marshal(w)
			if string(gb) != string(wb) {
				t.Fatalf("patch = %s, want %s", gb, wb)
			}
		})
	}
}
