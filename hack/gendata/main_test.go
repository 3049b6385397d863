package main

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/connector/inline"
	"github.com/usersuccess/persona-operator/internal/datasource"
	"github.com/usersuccess/persona-operator/internal/persona"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// testNow is the fixed "now" of the test; docs/demo-data.md quotes the member
// counts at this time.
const testNow = "2026-11-23T00:00:00Z"

var (
	demoDir    = filepath.Join("..", "..", "config", "demo")
	samplesDir = filepath.Join("..", "..", "config", "samples")
)

func generate(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	var log bytes.Buffer
	if err := run(append([]string{"-out", dir, "-now", testNow}, args...), &log); err != nil {
		t.Fatalf("gendata: %v\n%s", err, log.String())
	}
	return dir
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = data
	}
	return out
}

func TestDeterministicAndBounded(t *testing.T) {
	a, b := readDir(t, generate(t)), readDir(t, generate(t))
	want := []string{ConfigMapsFile}
	for _, f := range dataFiles {
		want = append(want, f.file)
	}
	sort.Strings(want)
	var got []string
	for name := range a {
		got = append(got, name)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("files = %v, want %v", got, want)
	}
	for name, data := range a {
		if !bytes.Equal(data, b[name]) {
			t.Errorf("%s differs between two runs with the same seed and now", name)
		}
	}
	for _, f := range dataFiles {
		if n := len(a[f.file]); n > MaxFileBytes {
			t.Errorf("%s is %d bytes, over %d", f.file, n, MaxFileBytes)
		} else {
			t.Logf("%-22s %7d bytes", f.file, n)
		}
	}

	// Another seed gives other data; another now shifts the dates.
	if c := readDir(t, generate(t, "-seed", "7")); bytes.Equal(c["users.ndjson"], a["users.ndjson"]) {
		t.Error("-seed 7 gave the same users as the default seed")
	}
	later := readDir(t, generate(t, "-now", "2027-03-01T00:00:00Z"))
	if !bytes.Contains(later["accounts.csv"], []byte("2027-03-")) || bytes.Equal(later["accounts.csv"], a["accounts.csv"]) {
		t.Error("-now did not move the dates")
	}
}

func TestRefusesOversizedFiles(t *testing.T) {
	dir := t.TempDir()
	var log bytes.Buffer
	err := run([]string{"-out", dir, "-now", testNow, "-users", "20000"}, &log)
	if err == nil || !strings.Contains(err.Error(), "users.ndjson") {
		t.Fatalf("20000 users: err = %v, want users.ndjson over budget", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("wrote %d files despite the error", len(entries))
	}
}

func TestRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},                                    // no -out
		{"-out", t.TempDir(), "-now", "soon"}, // bad now
		{"-out", t.TempDir(), "-users", "10", "-accounts", "20"},
		{"-out", t.TempDir(), "-request-rate", "0"},
	} {
		if err := run(args, &bytes.Buffer{}); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

// decodeDocs splits a multi-document YAML file and decodes each non-empty document.
func decodeDocs[T any](t *testing.T, path string) []T {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		var probe map[string]any
		if err := yaml.Unmarshal([]byte(doc), &probe); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(probe) == 0 {
			continue
		}
		var obj T
		if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, obj)
	}
	return out
}

func glob(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no files match %s (%v)", pattern, err)
	}
	return files
}

// TestSamplePersonas loads the generated data through the operator's own pure
// path (inline connector, attribute mapper, datasource.Run, the profile store)
// with the DataSources of config/demo, then evaluates every sample persona.
func TestSamplePersonas(t *testing.T) {
	counts := evaluateAll(t, generate(t), testNow, true)

	// Every date is relative to now, so the counts do not depend on it: make
	// demo shows these numbers whatever the day.
	const other = "2027-06-15T00:00:00Z"
	if later := evaluateAll(t, generate(t, "-now", other), other, false); !maps.Equal(counts, later) {
		t.Errorf("member counts depend on now:\n%s: %v\n%s: %v", testNow, counts, other, later)
	}
}

// TestOtherSeeds: the personas are non-empty by construction, not by luck of the
// default seed.
func TestOtherSeeds(t *testing.T) {
	for _, seed := range []string{"1", "2", "3", "1234"} {
		t.Run("seed "+seed, func(t *testing.T) { evaluateAll(t, generate(t, "-seed", seed), testNow, false) })
	}
}

// evaluateAll loads a generated dataset, evaluates every persona at nowText
// (the -now the data was generated with) and returns each persona's member count.
func evaluateAll(t *testing.T, dir, nowText string, verbose bool) map[string]int {
	t.Helper()
	now, err := time.Parse(time.RFC3339, nowText)
	if err != nil {
		t.Fatal(err)
	}
	logf := func(format string, args ...any) {
		t.Helper()
		if verbose {
			t.Logf(format, args...)
		}
	}

	// The ConfigMaps as the cluster would get them: configmaps.yaml must carry
	// each file byte for byte.
	configMaps := map[string]corev1.ConfigMap{}
	for _, cm := range decodeDocs[corev1.ConfigMap](t, filepath.Join(dir, ConfigMapsFile)) {
		configMaps[cm.Name] = cm
	}
	for _, f := range dataFiles {
		file, err := os.ReadFile(filepath.Join(dir, f.file))
		if err != nil {
			t.Fatal(err)
		}
		cm, ok := configMaps[f.configMap]
		if !ok || len(cm.Data) != 1 || cm.Data[f.file] != string(file) {
			t.Fatalf("ConfigMap %s does not hold exactly %s as key %s", f.configMap, f.file, f.file)
		}
	}

	ns := profile.NewStore().Namespace("demo")
	var sources []string
	for _, path := range glob(t, filepath.Join(demoDir, "*.yaml")) {
		for _, ds := range decodeDocs[v1alpha1.DataSource](t, path) {
			if ds.Kind != "DataSource" || ds.Spec.Type != v1alpha1.DataSourceInline || ds.Spec.Inline == nil || ds.Spec.Inline.ConfigMapRef == nil {
				t.Fatalf("%s: want an Inline DataSource reading a ConfigMap", path)
			}
			ref := ds.Spec.Inline.ConfigMapRef
			data, ok := configMaps[ref.Name].Data[ref.Key]
			if !ok {
				t.Fatalf("%s: ConfigMap %s has no key %s", ds.Name, ref.Name, ref.Key)
			}
			mapper, err := attr.NewMapper(&ds.Spec)
			if err != nil {
				t.Fatalf("%s: %v", ds.Name, err)
			}
			out := datasource.Run(context.Background(), datasource.Request{
				Name: ds.Name, Priority: ds.Spec.Priority, Source: inline.New(string(ds.Spec.Inline.Format), []byte(data)),
				Mapper: mapper, MaxShrinkPercent: ds.Spec.MaxShrinkPercent, Now: time.Now,
			})
			if out.FetchErr != nil || !out.Decision.Apply {
				t.Fatalf("%s: fetch error %v, decision %+v", ds.Name, out.FetchErr, out.Decision)
			}
			if out.Rejected > 0 {
				t.Fatalf("%s: %d records rejected, e.g. %+v", ds.Name, out.Rejected, out.Rejections)
			}
			logf("DataSource %-22s %5d records", ds.Name, out.Accepted)
			ns.Apply(out.Data)
			sources = append(sources, ds.Name)
		}
	}
	sort.Strings(sources)
	if want := "demo-accounts demo-feature-requests demo-tickets demo-users"; strings.Join(sources, " ") != want {
		t.Fatalf("config/demo DataSources = %v, want %s", sources, want)
	}
	if c := ns.Conflicts(); len(c) > 0 {
		t.Fatalf("schema conflicts: %v", c)
	}

	var personas []v1alpha1.Persona
	for _, path := range glob(t, filepath.Join(samplesDir, "personas_v1alpha1_persona_*.yaml")) {
		for _, p := range decodeDocs[v1alpha1.Persona](t, path) {
			if p.Kind != "Persona" {
				t.Fatalf("%s: kind %s", path, p.Kind)
			}
			personas = append(personas, p)
		}
	}
	if len(personas) < 12 {
		t.Fatalf("found %d sample personas, want at least 12", len(personas))
	}
	// Rules the tickets signal makes possible (docs/datasources.md).
	extra := map[string]string{
		"more-than-two-open-tickets":  `has(user.tickets) && size(user.tickets.filter(t, t.status == "open")) > 2`,
		"urgent-ticket-not-closed":    `has(user.tickets) && user.tickets.exists(t, t.priority == "urgent" && t.status != "closed")`,
		"open-ticket-older-than-week": `has(user.tickets) && user.tickets.exists(t, t.status == "open" && now - t.createdAt > duration("168h"))`,
		"requested-audit-log":         `has(user.featureRequests) && "audit_log" in user.featureRequests`,
	}
	var extraNames []string
	for name := range extra {
		extraNames = append(extraNames, name)
	}
	sort.Strings(extraNames)
	for _, name := range extraNames {
		p := v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: extra[name]}}
		p.Name = name
		personas = append(personas, p)
	}

	counts := map[string]int{}
	ns.Read(nil, func(v *profile.View) {
		total := len(v.UserIDs())
		logf("%d profiles at now=%s", total, nowText)
		for _, p := range personas {
			c, err := persona.Compile(&p.Spec, v.Schema())
			if err != nil {
				t.Errorf("%s: %v", p.Name, err)
				continue
			}
			ev := persona.Evaluate(v, c, now, time.Now)
			members := len(ev.Matching)
			counts[p.Name] = members
			logf("persona %-36s %5d members", p.Name, members)
			// user.playbooks is filled at run time by the Playbook controller, so
			// a persona over it has no members in static data.
			runtimeOnly := c.ReadsUser(attr.PlaybooksAttr)
			if (members == 0 && !runtimeOnly) || members == total {
				t.Errorf("%s: %d of %d users match; want some, not all", p.Name, members, total)
			}
			if ev.Errors > 0 {
				t.Errorf("%s: %d profiles failed to evaluate", p.Name, ev.Errors)
			}
			for _, in := range ev.Insights {
				if in.Error != "" {
					t.Errorf("%s insight %s: %s", p.Name, in.Name, in.Error)
				}
				logf("    insight %-22s %s%v", in.Name, in.Value, in.Values)
			}
			if p.Name == "at-risk-enterprise-decision-makers" {
				checkTopRequest(t, ev, logf)
			}
		}
	})
	return counts
}

// checkTopRequest asserts that the headline question has a clear answer: one
// enhancement requested by clearly more at-risk decision makers than any other.
func checkTopRequest(t *testing.T, ev persona.Evaluation, logf func(string, ...any)) {
	t.Helper()
	for _, in := range ev.Insights {
		if in.Name != "top-feature-requests" {
			continue
		}
		if len(in.Values) < 2 {
			t.Fatalf("top-feature-requests = %v, want at least two values", in.Values)
		}
		top, second := in.Values[0], in.Values[1]
		if top.Count < 5 || top.Count < 2*second.Count {
			t.Errorf("no clear top request: %v (want the first at least 5 and twice the second)", in.Values)
		}
		logf("headline answer: %s, requested by %d of %d at-risk decision makers", top.Value, top.Count, len(ev.Matching))
		return
	}
	t.Fatal("at-risk persona has no top-feature-requests insight")
}
