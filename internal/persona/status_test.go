package persona

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/rule"
)

// A rule at the CRD's 8 KiB limit that names hundreds of undeclared attributes
// makes CEL quote the whole rule once per mistake: about 900 KB of error. The
// condition must stay far below the API's 32768-byte limit on a message, or
// every status patch of the persona is rejected and nobody sees why.
func TestInvalidRuleMessageIsBounded(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() < 8000; i++ {
		fmt.Fprintf(&b, "user.missing%d == 1 || ", i)
	}
	b.WriteString("false")
	spec := v1alpha1.PersonaSpec{Rule: b.String()}
	_, err := Compile(&spec, rule.Schema{})
	if err == nil {
		t.Fatal("a rule over undeclared attributes compiled")
	}
	if len(err.Error()) < 100_000 {
		t.Fatalf("compile error of %d bytes: the test no longer reproduces a huge message", len(err.Error()))
	}
	p := &v1alpha1.Persona{Spec: spec}
	p.Generation = 2
	conditions.MarkStalled(&p.Status.Conditions, p.Generation, InvalidRule(err), Unchanged)
	for _, typ := range []string{v1alpha1.ReadyCondition, v1alpha1.StalledCondition} {
		c := meta.FindStatusCondition(p.Status.Conditions, typ)
		if c == nil || c.Reason != v1alpha1.ReasonInvalidRule {
			t.Fatalf("%s = %+v, want reason InvalidRule", typ, c)
		}
		if len(c.Message) > conditions.MaxMessageBytes {
			t.Fatalf("%s message of %d bytes, more than %d", typ, len(c.Message), conditions.MaxMessageBytes)
		}
		end := conditions.TruncatedMarker
		if typ == v1alpha1.ReadyCondition {
			end += "; " + Unchanged
		}
		if !strings.HasPrefix(c.Message, "spec.rule: ") || !strings.HasSuffix(c.Message, end) {
			t.Fatalf("%s message does not start with the error and end with the marker: %.80q…%q", typ, c.Message,
				c.Message[len(c.Message)-20:])
		}
	}
}

func TestSampleIsTheSmallestIDsSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 40 {
		members := map[string]membership.Member{}
		for range n {
			id := fmt.Sprintf("u%d", r.IntN(60))
			members[id] = membership.Member{UserID: id}
		}
		want := slices.Sorted(maps.Keys(members))
		if len(want) > SampleSize {
			want = want[:SampleSize]
		}
		if len(want) == 0 {
			want = nil
		}
		if got := membership.Smallest(maps.Keys(members), SampleSize); !slices.Equal(got, want) {
			t.Fatalf("%d members: sample %v, want %v", len(members), got, want)
		}
	}
}
