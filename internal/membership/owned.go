package membership

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Owned returns the items owner controls, in their order. Slices are found by
// their owner's name label, and a label proves nothing: a slice left by a
// deleted owner of the same name (until garbage collection removes it) or
// labelled by hand carries it too. Only the controller reference says whose a
// slice is, so every reader of PersonaMembership slices (the Persona and
// Playbook controllers, the query endpoint, the kubectl plugin) and of
// PlaybookProgress ledgers filters with this.
func Owned[T any, PT interface {
	*T
	metav1.Object
}](owner metav1.Object, items []T) []T {
	out := make([]T, 0, len(items))
	for i := range items {
		if metav1.IsControlledBy(PT(&items[i]), owner) {
			out = append(out, items[i])
		}
	}
	return out
}
