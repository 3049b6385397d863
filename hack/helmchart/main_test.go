package main

import (
	"strings"
	"testing"
)

const sentinel = "chart-image-sentinel:0"

func input(deployment string) string {
	return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  annotations:
    controller-gen.kubebuilder.io/version: v0.23.0
  name: personas.personas.usersuccess.io
spec:
  description: 'has(self.x) ? "{{ not a template }}" : ""'
---
apiVersion: v1
kind: Namespace
metadata:
  name: persona-operator-system
---
` + deployment
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  labels:
    app.kubernetes.io/managed-by: kustomize
  name: persona-operator-controller-manager
  namespace: persona-operator-system
spec:
  replicas: 2
  template:
    spec:
      containers:
      - image: chart-image-sentinel:0
        name: manager
`

func TestTemplates(t *testing.T) {
	docs, err := readDocs(strings.NewReader(input(deployment)))
	if err != nil {
		t.Fatal(err)
	}
	files, err := templates(docs, sentinel)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Errorf("files %v: want the CRD and the Deployment, not the Namespace", keys(files))
	}
	dep := string(files["templates/deployment-controller-manager.yaml"])
	for _, want := range []string{"namespace: {{ .Release.Namespace }}", "replicas: {{ .Values.replicas }}",
		"image: {{ .Values.image | quote }}", "app.kubernetes.io/managed-by: {{ .Release.Service }}"} {
		if !strings.Contains(dep, want) {
			t.Errorf("the Deployment template lacks %q:\n%s", want, dep)
		}
	}
	crd := string(files["templates/customresourcedefinition-personas.personas.usersuccess.io.yaml"])
	if !strings.Contains(crd, "helm.sh/resource-policy: keep") {
		t.Errorf("the CRD is not kept on uninstall:\n%s", crd)
	}
	if !strings.Contains(crd, `"{{ "{{" }} not a template }}"`) {
		t.Errorf("a {{ in the input is not escaped:\n%s", crd)
	}
}

func TestTemplatesFailLoudly(t *testing.T) {
	for name, tt := range map[string]struct{ deployment, err string }{
		"image not the sentinel": {strings.Replace(deployment, sentinel, "controller:latest", 1), "occurs 0 times"},
		"no replicas":            {strings.Replace(deployment, "  replicas: 2\n", "", 1), "0 spec.replicas lines"},
		"no deployment":          {"", "0 Deployments"},
	} {
		t.Run(name, func(t *testing.T) {
			docs, err := readDocs(strings.NewReader(input(tt.deployment)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := templates(docs, sentinel); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want %q", err, tt.err)
			}
		})
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// renderIf evaluates the ifBlock conditionals of a template the way Helm does
// for cond's value (the blocks do not nest).
func renderIf(t *testing.T, text string, on bool) string {
	t.Helper()
	var out strings.Builder
	in := false
	for _, l := range strings.SplitAfter(text, "\n") {
		switch strings.TrimSpace(l) {
		case "{{- if " + eventsEnabled + " }}":
			if in {
				t.Fatalf("nested conditional in:\n%s", text)
			}
			in = true
		case "{{- end }}":
			in = false
		default:
			if !in || on {
				out.WriteString(l)
			}
		}
	}
	if in {
		t.Fatalf("unterminated conditional in:\n%s", text)
	}
	return out.String()
}

const eventsService = `apiVersion: v1
kind: Service
metadata:
  name: persona-operator-events
  namespace: persona-operator-system
spec:
  ports:
  - port: 8445
`

func TestOptionalEvents(t *testing.T) {
	base := deployment + `        args:
        - --leader-elect
        ports:
        - containerPort: 8444
          protocol: TCP
`
	// Added lines that repeat the base's (protocol: TCP) and one at the end.
	more := deployment + `        args:
        - --leader-elect
        - --events-bind-address=:8445
        ports:
        - containerPort: 8445
          protocol: TCP
        - containerPort: 8444
          protocol: TCP
        volumeMounts:
        - mountPath: /etc/persona-events
`
	files, want := templatesOf(t, input(base)), templatesOf(t, input(more)+"---\n"+eventsService)
	docs, err := readDocs(strings.NewReader(input(more) + "---\n" + eventsService))
	if err != nil {
		t.Fatal(err)
	}
	got, err := optional(files, docs, sentinel, eventsEnabled)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("files %v, want %v", keys(got), keys(want))
	}
	for name, text := range got {
		if on := renderIf(t, string(text), true); on != string(want[name]) {
			t.Errorf("%s with events.enabled=true:\n%s\nwant:\n%s", name, on, want[name])
		}
		if off := renderIf(t, string(text), false); off != string(files[name]) {
			t.Errorf("%s with events.enabled=false:\n%s\nwant:\n%s", name, off, files[name])
		}
	}
	if !strings.HasPrefix(string(got["templates/service-events.yaml"]), "{{- if "+eventsEnabled+" }}\napiVersion: v1\n") {
		t.Errorf("the added Service is not wrapped whole:\n%s", got["templates/service-events.yaml"])
	}
}

func TestOptionalMayOnlyAdd(t *testing.T) {
	files := templatesOf(t, input(deployment))
	for name, tt := range map[string]struct{ more, err string }{
		"a changed line":   {input(strings.Replace(deployment, "name: manager", "name: other", 1)), `changes or drops the line "name: manager"`},
		"a dropped object": {deployment, "drops templates/customresourcedefinition-"},
	} {
		t.Run(name, func(t *testing.T) {
			docs, err := readDocs(strings.NewReader(tt.more))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := optional(files, docs, sentinel, eventsEnabled); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want %q", err, tt.err)
			}
		})
	}
}

func templatesOf(t *testing.T, in string) map[string][]byte {
	t.Helper()
	docs, err := readDocs(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	files, err := templates(docs, sentinel)
	if err != nil {
		t.Fatal(err)
	}
	return files
}
