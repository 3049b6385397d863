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
