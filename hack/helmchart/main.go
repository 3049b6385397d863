// Command helmchart turns the rendered installer (kustomize build of
// config/default, the same manifests as dist/install.yaml) into a Helm chart,
// so the chart is generated from config/ and never kept by hand.
//
//	hack/render-config.sh SENTINEL events > events.yaml
//	hack/render-config.sh SENTINEL | go run ./hack/helmchart -image-sentinel SENTINEL -image IMG -events events.yaml -out dist/chart
//
// One template per object. Parameterized: the namespace (the release's), the
// manager image and the replica count (values.yaml). Each substitution must
// match exactly where expected, so a change in config/ that would silently
// leave a value unparameterized fails the generator instead.
//
// With -events (the render of config/events, config/default plus the event
// endpoint), what that render adds is kept behind the events.enabled value:
// its extra objects whole, and its extra lines in an object (the manager's
// flags, port and Secret volume). The overlay may only add: an object or line
// of config/default that it changes or drops fails the generator.
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
	flag.StringVar(&o.events, "events", "", "The render of config/events: what it adds to the input is enabled by the events.enabled value.")
	flag.Parse()
	if err := run(os.Stdin, o); err != nil {
		fmt.Fprintln(os.Stderr, "helmchart:", err)
		os.Exit(1)
	}
}

type options struct{ out, sentinel, image, version, events string }

func run(in io.Reader, o options) error {
	if o.sentinel == "" {
		return errors.New("-image-sentinel is required")
	}
	docs, err := readDocs(in)
	if err != nil {
		return err
	}
	var withEvents []doc
	if o.events != "" {
		f, err := os.Open(o.events)
		if err != nil {
			return err
		}
		withEvents, err = readDocs(f)
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", o.events, err)
		}
	}
	files, err := templates(docs, o.sentinel)
	if err != nil {
		return err
	}
	if withEvents != nil {
		if files, err = optional(files, withEvents, o.sentinel, eventsEnabled); err != nil {
			return fmt.Errorf("%s: %w", o.events, err)
		}
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
# The Segment-compatible event endpoint (docs/events.md): a Service on :8445
# selecting the leader, and the manager's --events-* flags. Needs the event
# store's PostgreSQL connection string in the Secret
# persona-operator-events-database (key dsn) of the release namespace.
events:
  enabled: false
`

const notesTXT = `persona-operator is installed in {{ .Release.Namespace }} ({{ .Values.replicas }} replicas).

kubectl persona explain and preview reach the manager's query endpoint:
  kubectl -n {{ .Release.Namespace }} port-forward svc/persona-operator-query 8444
  export PERSONA_QUERY_ENDPOINT=https://127.0.0.1:8444
  export PERSONA_QUERY_CA=persona-query-ca.crt   # the CA: see docs/kubectl-persona.md
{{- if .Values.events.enabled }}

The event endpoint (Segment's HTTP Tracking API) is the Service persona-operator-events:8445;
it reads the event store's DSN from the Secret persona-operator-events-database (key dsn).
{{- end }}
`

// The value that turns on what config/events adds to config/default.
const eventsEnabled = ".Values.events.enabled"

// optional merges the templates of a render that only adds to the base's
// (files) into them, keeping what it adds behind the value cond: an object it
// adds is wrapped whole, lines it adds to an object are wrapped in place.
// Rendered with cond false the result is the base's text exactly, with cond
// true the other render's.
func optional(files map[string][]byte, more []doc, sentinel, cond string) (map[string][]byte, error) {
	added, err := templates(more, sentinel)
	if err != nil {
		return nil, err
	}
	for name := range files {
		if _, ok := added[name]; !ok {
			return nil, fmt.Errorf("it drops %s: it may only add to config/default", name)
		}
	}
	out := make(map[string][]byte, len(added))
	for name, text := range added {
		base, ok := files[name]
		if !ok {
			out[name] = []byte(ifBlock(cond, string(text)))
			continue
		}
		merged, err := insertions(string(base), string(text), cond)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = []byte(merged)
	}
	return out, nil
}

// ifBlock wraps text (whole lines) in a Helm conditional. The actions trim the
// newline before them, so each renders as nothing.
func ifBlock(cond, text string) string {
	return "{{- if " + cond + " }}\n" + text + "{{- end }}\n"
}

// insertions returns more's lines with each run that is not in base wrapped
// in ifBlock(cond). base must be a subsequence of more (matched greedily,
// which finds one whenever one exists); which of several equal lines is taken
// as the added one does not matter, as both renderings are exact.
func insertions(base, more, cond string) (string, error) {
	bl, ml := strings.SplitAfter(base, "\n"), strings.SplitAfter(more, "\n")
	var out, run strings.Builder
	flush := func() {
		if run.Len() > 0 {
			out.WriteString(ifBlock(cond, run.String()))
			run.Reset()
		}
	}
	i := 0
	for _, l := range ml {
		if i < len(bl) && l == bl[i] {
			flush()
			out.WriteString(l)
			i++
			continue
		}
		run.WriteString(l)
	}
	flush()
	if i < len(bl) {
		return "", fmt.Errorf("it changes or drops the line %q: it may only add to config/default", strings.TrimSpace(bl[i]))
	}
	return out.String(), nil
}
