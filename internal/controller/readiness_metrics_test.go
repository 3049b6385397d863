package controller

import (
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// A pure unit test of the collector over a fake client: what it exports for
// Ready True, False and missing, and that a standby exports nothing.
func TestReadinessCollector(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ready := []metav1.Condition{{Type: v1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: "Succeeded"}}
	notReady := []metav1.Condition{{Type: v1alpha1.ReadyCondition, Status: metav1.ConditionFalse, Reason: "InvalidRule"}}
	p1 := &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "ok"}}
	p1.Status.Conditions = ready
	p2 := &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "broken"}}
	p2.Status.Conditions = notReady
	pb := &v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "new"}} // not reconciled yet
	ds := &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "users"}}
	ds.Status.Conditions = ready
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(p1, p2, pb, ds).Build()

	elected := make(chan struct{})
	col := &readinessCollector{desc: objectReady.desc}
	col.set(c, elected)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	if got := gatherReady(t, reg); len(got) != 0 {
		t.Fatalf("a standby exported %v, want nothing", got)
	}
	close(elected)
	want := map[string]float64{"DataSource b/users": 1, "Persona a/broken": 0, "Persona a/ok": 1, "Playbook b/new": 0}
	if got := gatherReady(t, reg); !maps.Equal(got, want) {
		t.Errorf("persona_object_ready = %v, want %v", got, want)
	}
}

// gatherReady returns persona_object_ready's values by "kind namespace/name".
func gatherReady(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "persona_object_ready" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out[l["kind"]+" "+l["namespace"]+"/"+l["name"]] = m.GetGauge().GetValue()
		}
	}
	return out
}
