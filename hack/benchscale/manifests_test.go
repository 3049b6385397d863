package main

import (
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var unstructuredString = unstructured.NestedString

// TestBenchManifests checks what the driver relies on: 3 DataSources syncing
// every 30s, 11 personas each with its SQL, and the playbook on the persona the
// single-row changes enter.
func TestBenchManifests(t *testing.T) {
	dir := filepath.Join("..", "bench")
	ds, err := readManifests(filepath.Join(dir, "datasources.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Errorf("%d DataSources, want 3", len(ds))
	}
	for _, d := range ds {
		if typ, _, _ := unstructuredString(d.Object, "spec", "type"); typ != "PostgreSQL" {
			t.Errorf("DataSource %s: type %q, want PostgreSQL", d.GetName(), typ)
		}
		if iv, _, _ := unstructuredString(d.Object, "spec", "interval"); iv != "30s" {
			t.Errorf("DataSource %s: interval %q, want 30s", d.GetName(), iv)
		}
	}
	ps, err := readManifests(filepath.Join(dir, "personas.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range ps {
		if p.GetKind() != "Persona" || p.GetAnnotations()[whereAnnotation] == "" {
			t.Errorf("%s %s: want a Persona with a %s annotation", p.GetKind(), p.GetName(), whereAnnotation)
		}
		names[p.GetName()] = true
	}
	if len(ps) != 11 || !names[latencyPersona] {
		t.Errorf("%d personas (%v), want 11 including %s", len(ps), names, latencyPersona)
	}
	pb, err := readManifests(filepath.Join(dir, "playbook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pb) != 1 || pb[0].GetName() != latencyPlaybook {
		t.Fatalf("playbook.yaml: want the one playbook %s", latencyPlaybook)
	}
	if ref, _, _ := unstructuredString(pb[0].Object, "spec", "personaRef", "name"); ref != latencyPersona {
		t.Errorf("playbook on %q, want %s", ref, latencyPersona)
	}
}
