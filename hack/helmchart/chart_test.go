package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// TestChartDryRun lints the generated chart, renders it with helm template and
// applies the result with kubectl apply --dry-run=server against a real
// kube-apiserver (envtest) holding the chart's CRDs and stand-ins of
// cert-manager's. make test-helm runs it with $HELM and $CHART set; elsewhere
// it is skipped.
func TestChartDryRun(t *testing.T) {
	helm, chart := os.Getenv("HELM"), os.Getenv("CHART")
	if helm == "" || chart == "" || os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("HELM, CHART and KUBEBUILDER_ASSETS are not all set: make test-helm sets them")
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// The control plane the chart is tested against (Makefile K8S_VERSION).
	const kubeVersion = "v1.37.2"
	t.Log(run(helm, "lint", "--strict", "--kube-version", kubeVersion, chart))

	const ns = "personas-test"
	rendered := run(helm, "template", "persona-operator", chart, "--namespace", ns, "--kube-version", kubeVersion,
		"--set", "image=registry.example/persona-operator:v9.9.9", "--set", "replicas=3", "--set", "events.enabled=true")
	for _, want := range []string{"image: \"registry.example/persona-operator:v9.9.9\"", "replicas: 3",
		"name: persona-operator-events\n", "- --events-database-dsn-file=/etc/persona-events/dsn", "secretName: persona-operator-events-database",
		"persona-operator-query." + ns + ".svc", "cert-manager.io/inject-ca-from: " + ns + "/persona-operator-serving-cert"} {
		if !strings.Contains(rendered, want) {
			t.Errorf("the rendered chart lacks %q", want)
		}
	}
	// The event endpoint is off by default (it needs a PostgreSQL database).
	if plain := run(helm, "template", "persona-operator", chart, "--namespace", ns, "--kube-version", kubeVersion); strings.Contains(plain, "name: persona-operator-events\n") || strings.Contains(plain, "--events-") {
		t.Errorf("the chart with default values has the event endpoint")
	}
	if strings.Contains(rendered, installNamespace) {
		t.Errorf("the rendered chart still names %s", installNamespace)
	}
	file := filepath.Join(t.TempDir(), "chart.yaml")
	if err := os.WriteFile(file, []byte(rendered), 0o600); err != nil {
		t.Fatal(err)
	}

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases"), filepath.Join("testdata", "cert-manager-crds.yaml")},
		ErrorIfCRDPathMissing: true,
	}
	if _, err := env.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	// kubectl as an admin of its own (a client certificate in system:masters).
	admin, err := env.ControlPlane.AddUser(envtest.User{Name: "chart-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubectl, err := admin.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := kubectl.Run("create", "namespace", ns); err != nil {
		t.Fatalf("creating the namespace: %v\n%s", err, readAll(stderr))
	}
	stdout, stderr, err := kubectl.Run("apply", "--server-side", "--dry-run=server", "-f", file)
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, readAll(stderr))
	}
	out := readAll(stdout)
	t.Log(out)
	objects := strings.Count(rendered, "\n# Source: ")
	if n := strings.Count(out, "(server dry run)"); n != objects || n < 20 {
		t.Errorf("%d objects accepted by the dry run, want all %d of the chart", n, objects)
	}
}

func readAll(r io.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}
