// Command helmchart turns the rendered installer (kustomize build of
// config/default, the same manifests as dist/install.yaml) into a Helm chart,
// so the chart is generated from config/ and never kept by hand.
//
//	hack/render-config.sh SENTINEL | go run ./hack/helmchart -image-sentinel SENTINEL -image IMG -out dist/chart
//
// One template per object. Parameterized: the namespace (the release's), the
// manager image and the replica count (values.yaml). Each substitution must
// match exactly where expected, so a change in config/ that would silently
// leave a value unparameterized fails the generator instead.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The namespace config/default installs into; the chart uses the release's.
const installNamespace = "persona-operator-system"

func main() {
	var o options
	flag.StringVar(&o.out, "out", "dist/chart", "Directory to write the chart into (its persona-operator/ subdirectory is replaced).")
	flag.StringVar(&o.sentinel, "image-sentinel", "", "The image the input was rendered with, replaced by the image value.")
	flag.StringVar(&o.image, "image", "controller:latest", "Default of the image value.")
	flag.StringVar(&o.version, "version", "0.1.0", "Chart version and appVersion.")
	flag.Parse()
	if err := run(os.Stdin, o); err != nil {
		fmt.Fprintln(os.Stderr, "helmchart:", err)
		os.Exit(1)
	}
}

type options struct{ out, sentinel, image, version string }

func run(in io.Reader, o options) error {
	if o.sentinel == "" {
		return errors.New("-image-sentinel is required")
	}
	docs, err := readDocs(in)
	if err != nil {
		return err
	}
	files, err := templates(docs, o.sentinel)
	if err != nil {
		return err
	}
	dir := filepath.Join(o.out, chartName)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	files["Chart.yaml"] = []byte(fmt.Sprintf(chartYAML, chartName, o.version, o.version))
	files["values.yaml"] = []byte(fmt.Sprintf(valuesYAML, o.image))
	files["templates/NOTES.txt"] = []byte(notesTXT)
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	fmt.Println(dir)
	return nil
}

const chartName = "persona-operator"

// doc is one object of the input: its text and what names it.
type doc struct {
	text       string
	kind, name string
}

func readDocs(in io.Reader) ([]doc, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var docs []doc
	for {
		b, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(b, &meta); err != nil {
			return nil, fmt.Errorf("parsing an object: %w", err)
		}
		if meta.Kind == "" || meta.Metadata.Name == "" {
			return nil, fmt.Errorf("an object without kind or name:\n%s", b)
		}
		docs = append(docs, doc{text: string(b), kind: meta.Kind, name: meta.Metadata.Name})
	}
	if len(docs) == 0 {
		return nil, errors.New("no objects in the input")
	}
	return docs, nil
}

var replicasLine = regexp.MustCompile(`(?m)^  replicas: \d+$`)

// templates turns the objects into template files by name.
func templates(docs []doc, sentinel string) (map[string][]byte, error) {
	files := map[string][]byte{}
	var deployments, namespaced int
	for _, d := range docs {
		if d.kind == "Namespace" {
			// Helm installs into an existing namespace (or --create-namespace).
			continue
		}
		// Text that looks like a template action (a CEL example in a CRD
		// description, say) must reach the cluster verbatim.
		t := strings.ReplaceAll(d.text, "{{", `{{ "{{" }}`)
		if strings.Contains(t, installNamespace) {
			namespaced++
			t = strings.ReplaceAll(t, installNamespace, "{{ .Release.Namespace }}")
		}
		t = strings.ReplaceAll(t, "app.kubernetes.io/managed-by: kustomize", "app.kubernetes.io/managed-by: {{ .Release.Service }}")
		switch d.kind {
		case "Deployment":
			deployments++
			var err error
			if t, err = replaceOnce(t, "image: "+sentinel, "image: {{ .Values.image | quote }}"); err != nil {
				return nil, fmt.Errorf("the Deployment %s: %w", d.name, err)
			}
			if n := len(replicasLine.FindAllString(t, -1)); n != 1 {
				return nil, fmt.Errorf("the Deployment %s: %d spec.replicas lines, want 1", d.name, n)
			}
			t = replicasLine.ReplaceAllString(t, "  replicas: {{ .Values.replicas }}")
		case "CustomResourceDefinition":
			// helm uninstall must not delete every Persona with its CRD.
			var err error
			if t, err = replaceOnce(t, "metadata:\n  annotations:\n", "metadata:\n  annotations:\n    helm.sh/resource-policy: keep\n"); err != nil {
				return nil, fmt.Errorf("CRD %s: %w", d.name, err)
			}
		}
		name := fmt.Sprintf("templates/%s-%s.yaml", strings.ToLower(d.kind), strings.TrimPrefix(d.name, chartName+"-"))
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("two objects make %s", name)
		}
		files[name] = []byte(t)
	}
	if deployments != 1 {
		return nil, fmt.Errorf("%d Deployments in the input, want 1", deployments)
	}
	if namespaced == 0 {
		return nil, fmt.Errorf("no object in namespace %s: was the input rendered from config/default?", installNamespace)
	}
	return files, nil
}

func replaceOnce(s, old, repl string) (string, error) {
	if n := strings.Count(s, old); n != 1 {
		return "", fmt.Errorf("%q occurs %d times, want once", old, n)
	}
	return strings.Replace(s, old, repl, 1), nil
}

const chartYAML = `# Generated by hack/helmchart from config/default (make helm-chart): do not edit.
apiVersion: v2
name: %s
description: persona-operator, rendered from the same kustomize config/ as dist/install.yaml. Needs cert-manager.
type: application
version: %s
appVersion: %q
kubeVersion: ">= 1.30.0-0"
`

const valuesYAML = `# Generated by hack/helmchart (make helm-chart). The chart installs into the
# release namespace: helm install persona-operator dist/chart/persona-operator \
#   -n persona-operator-system --create-namespace --set image=REGISTRY/persona-operator:TAG

# The manager image.
image: %q
# Manager replicas. One reconciles (leader election); every replica serves the
# Persona validating webhook, which fails closed, so keep at least 2 (a
# PodDisruptionBudget keeps 1 up through drains).
replicas: 2
`

const notesTXT = `persona-operator is installed in {{ .Release.Namespace }} ({{ .Values.replicas }} replicas).

kubectl persona explain and preview reach the manager's query endpoint:
  kubectl -n {{ .Release.Namespace }} port-forward svc/persona-operator-query 8444
  export PERSONA_QUERY_ENDPOINT=https://127.0.0.1:8444
  export PERSONA_QUERY_CA=persona-query-ca.crt   # the CA: see docs/kubectl-persona.md
`
