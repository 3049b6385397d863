package membership

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

func TestOwned(t *testing.T) {
	yes := true
	owner := &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid-now"}}
	ref := func(uid types.UID, controller bool) []metav1.OwnerReference {
		r := metav1.OwnerReference{Kind: "Persona", Name: "p", UID: uid}
		if controller {
			r.Controller = &yes
		}
		return []metav1.OwnerReference{r}
	}
	slice := func(name string, refs []metav1.OwnerReference) v1alpha1.PersonaMembership {
		return v1alpha1.PersonaMembership{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: refs,
			Labels: map[string]string{v1alpha1.PersonaLabel: "p"}}}
	}
	items := []v1alpha1.PersonaMembership{
		slice("mine-1", ref("uid-now", true)),
		slice("of-a-deleted-persona-of-the-same-name", ref("uid-before", true)),
		slice("labelled-by-hand", nil),
		slice("owned-but-not-controlled", ref("uid-now", false)),
		slice("mine-2", ref("uid-now", true)),
	}
	got := Owned(owner, items)
	if len(got) != 2 || got[0].Name != "mine-1" || got[1].Name != "mine-2" {
		t.Errorf("Owned = %v, want mine-1, mine-2", names(got))
	}
	if len(Owned(owner, []v1alpha1.PersonaMembership(nil))) != 0 {
		t.Error("Owned(nil) is not empty")
	}
}

func names(items []v1alpha1.PersonaMembership) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Name)
	}
	return out
}
