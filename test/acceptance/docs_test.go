package acceptance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/persona"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
)

// The docs are part of the product: these specs keep their examples honest.
// Conventions (also in docs/README.md):
//
//   - Every ```yaml block of docs/*.md and README.md that holds a
//     personas.usersuccess.io object (or a v1 Secret or ConfigMap) is created
//     with a server-side dry run in a fresh namespace: CRD schema, CEL
//     validation rules and the admission webhook must accept it. Persona rules
//     and insights are also compiled against the schema of every DataSource the
//     docs and config/samples, config/samples/connectors and config/demo declare.
//   - A block that elides part of an object with `{...}`, or that follows the
//     line `<!-- not applied -->`, is skipped.
//   - A ```yaml block that follows `<!-- file: NAME -->` is the file NAME for
//     the commands of the same page.
//   - In the pages of docsWithCommands, each `$ kubectl ...` line of a
//     ```console block is run, in order, against the test control plane, in a
//     namespace set up like `make demo`'s (usersuccess-demo stands for it);
//     `$ make`, `$ export` and `$ go` lines are left to `make demo` and CI. A
//     block that follows `<!-- not run -->` is skipped.
//   - Every metric named in the Grafana dashboard, the alerts and the metric
//     names of docs/operations.md is registered on controller-runtime's registry.

// docsWithCommands are the pages whose console blocks the specs run.
var docsWithCommands = []string{"quickstart.md", "membership.md", "operations.md", "connectors.md"}

var repoRoot = cluster.RepoPath()

// docBlock is one fenced block of a Markdown file.
type docBlock struct {
	file   string // repository-relative
	line   int    // of the opening fence
	lang   string
	text   string
	marker string // the HTML comment on the line before the fence, if any
}

func (b docBlock) where() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// docFiles lists README.md and docs/*.md.
func docFiles() []string {
	GinkgoHelper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	Expect(err).NotTo(HaveOccurred())
	files = append([]string{filepath.Join(repoRoot, "README.md")}, files...)
	Expect(len(files)).To(BeNumerically(">", 5))
	return files
}

// docBlocks returns the fenced blocks of one Markdown file.
func docBlocks(path string) []docBlock {
	GinkgoHelper()
	data, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	rel, _ := filepath.Rel(repoRoot, path)
	var out []docBlock
	var cur *docBlock
	var body []string
	prev := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &docBlock{file: filepath.ToSlash(rel), line: n, lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))}
			if strings.HasPrefix(prev, "<!--") && strings.HasSuffix(prev, "-->") {
				cur.marker = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(prev, "<!--"), "-->"))
			}
			body = nil
		case cur != nil && trimmed == "```":
			cur.text = strings.Join(body, "\n") + "\n"
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body = append(body, line)
		}
		if trimmed != "" {
			prev = trimmed
		}
	}
	Expect(sc.Err()).NotTo(HaveOccurred())
	Expect(cur).To(BeNil(), "%s: unterminated code block", rel)
	return out
}

// docObjects decodes the Kubernetes objects of a YAML block; documents that are
// not objects (fragments, lists of alert rules) are ignored.
func docObjects(b docBlock) []*unstructured.Unstructured {
	GinkgoHelper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(b.text)))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		Expect(err).NotTo(HaveOccurred(), b.where())
		var v any
		Expect(yaml.Unmarshal(doc, &v)).To(Succeed(), "%s: not valid YAML", b.where())
		m, ok := v.(map[string]any)
		if !ok || m["apiVersion"] == nil || m["kind"] == nil {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// appliedKind reports whether the docs test applies objects of this kind.
func appliedKind(u *unstructured.Unstructured) bool {
	gvk := u.GroupVersionKind()
	if gvk.Group == v1alpha1.GroupVersion.Group {
		return true
	}
	return gvk.Group == "" && gvk.Version == "v1" && (gvk.Kind == "Secret" || gvk.Kind == "ConfigMap")
}

// docExample is one object the docs show, to be applied.
type docExample struct {
	block docBlock
	obj   *unstructured.Unstructured
}

// docExamples collects every applied object of every doc, with the blocks
// skipped by convention.
func docExamples() (examples []docExample, skipped []string) {
	GinkgoHelper()
	for _, f := range docFiles() {
		for _, b := range docBlocks(f) {
			if b.lang != "yaml" {
				continue
			}
			if b.marker == "not applied" || strings.Contains(b.text, "{...}") {
				skipped = append(skipped, b.where())
				continue
			}
			for _, o := range docObjects(b) {
				if appliedKind(o) {
					examples = append(examples, docExample{block: b, obj: o})
				}
			}
		}
	}
	return examples, skipped
}

// declaredDataSources are the DataSources whose schema the docs' personas may
// use: those the docs show and those of config/samples (connectors included)
// and config/demo (its events included).
func declaredDataSources(examples []docExample) []v1alpha1.DataSource {
	GinkgoHelper()
	var objs []*unstructured.Unstructured
	for _, e := range examples {
		objs = append(objs, e.obj)
	}
	var files []string
	for _, pattern := range []string{"config/samples/*.yaml", "config/samples/connectors/*.yaml", "config/demo/*.yaml", "config/demo/events/*.yaml"} {
		m, err := filepath.Glob(filepath.Join(repoRoot, pattern))
		Expect(err).NotTo(HaveOccurred())
		files = append(files, m...)
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		Expect(err).NotTo(HaveOccurred())
		objs = append(objs, docObjects(docBlock{file: f, text: string(data)})...)
	}
	var out []v1alpha1.DataSource
	for _, o := range objs {
		if o.GetKind() != "DataSource" || o.GroupVersionKind().Group != v1alpha1.GroupVersion.Group {
			continue
		}
		var ds v1alpha1.DataSource
		Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &ds)).To(Succeed(), o.GetName())
		out = append(out, ds)
	}
	return out
}

// docsSchema is the attribute schema those DataSources declare, built the way
// the admission webhook builds it.
func docsSchema(sources []v1alpha1.DataSource) profile.Schema {
	GinkgoHelper()
	var decls []*profile.SourceData
	for i := range sources {
		ds := &sources[i]
		d, err := profile.Declared(ds)
		Expect(err).NotTo(HaveOccurred(), "DataSource %s: its attribute mapping does not compile", ds.Name)
		// Names repeat across pages and samples; the name only breaks ties.
		d.Name = fmt.Sprintf("%s-%03d", ds.Name, i)
		decls = append(decls, d)
	}
	return profile.DeclaredSchema(decls)
}

var _ = Describe("docs", func() {
	It("accepts every example object of docs/*.md and README.md (server-side dry run)", func() {
		examples, skipped := docExamples()
		GinkgoWriter.Printf("docs: %d example objects; skipped blocks: %v\n", len(examples), skipped)
		kinds := map[string]int{}
		for _, e := range examples {
			kinds[e.obj.GetKind()]++
		}
		for _, k := range []string{"DataSource", "Persona", "Playbook"} {
			Expect(kinds[k]).To(BeNumerically(">", 0), "the docs show no %s", k)
		}
		ns := newNamespace()
		var failures []string
		for _, e := range examples {
			o := e.obj.DeepCopy()
			o.SetNamespace(ns)
			if err := k8sClient.Create(ctx, o, client.DryRunAll); err != nil {
				failures = append(failures, fmt.Sprintf("%s: %s %s: %v", e.block.where(), o.GetKind(), o.GetName(), err))
			}
		}
		Expect(failures).To(BeEmpty())
	})

	It("compiles every Persona example's rule and insights against the documented DataSources", func() {
		examples, _ := docExamples()
		schema := docsSchema(declaredDataSources(examples))
		var failures []string
		n := 0
		for _, e := range examples {
			if e.obj.GetKind() != "Persona" {
				continue
			}
			var p v1alpha1.Persona
			Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(e.obj.Object, &p)).To(Succeed(), e.block.where())
			if _, err := persona.Compile(&p.Spec, schema); err != nil {
				failures = append(failures, fmt.Sprintf("%s: Persona %s: %v", e.block.where(), p.Name, err))
			}
			n++
		}
		Expect(n).To(BeNumerically(">", 0))
		Expect(failures).To(BeEmpty())
	})

	// hack/demo.sh applies config/demo/events only when it has an event store,
	// so no other spec creates it.
	It("accepts the objects of config/demo/events (server-side dry run) and compiles its persona", func() {
		file := filepath.Join(repoRoot, "config", "demo", "events", "events.yaml")
		data, err := os.ReadFile(file)
		Expect(err).NotTo(HaveOccurred())
		objs := docObjects(docBlock{file: file, text: string(data)})
		Expect(objs).To(HaveLen(3))
		schema := docsSchema(declaredDataSources(nil))
		ns := newNamespace()
		for _, o := range objs {
			o.SetNamespace(ns)
			Expect(k8sClient.Create(ctx, o, client.DryRunAll)).To(Succeed(), o.GetName())
			if o.GetKind() == "Persona" {
				var p v1alpha1.Persona
				Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &p)).To(Succeed())
				_, err := persona.Compile(&p.Spec, schema)
				Expect(err).NotTo(HaveOccurred(), p.Name)
			}
		}
	})

	It("runs the kubectl commands of the console blocks in the docs that have them", func() {
		ns := demoLikeNamespace()
		tmp := GinkgoT().TempDir()
		ran := 0
		for _, page := range docsWithCommands {
			blocks := docBlocks(filepath.Join(repoRoot, "docs", page))
			files := map[string]string{}
			for _, b := range blocks {
				if name, ok := strings.CutPrefix(b.marker, "file:"); ok && b.lang == "yaml" {
					name = strings.TrimSpace(name)
					path := filepath.Join(tmp, page+"-"+name)
					Expect(os.WriteFile(path, []byte(b.text), 0o600)).To(Succeed())
					files[name] = path
				}
			}
			for _, b := range blocks {
				if b.lang != "console" || b.marker == "not run" {
					continue
				}
				for _, c := range consoleCommands(b) {
					first, _, _ := strings.Cut(strings.TrimSpace(c.text), " ")
					switch first {
					case "make", "export", "go":
						continue // make demo and CI run these
					case "kubectl":
					default:
						Fail(fmt.Sprintf("%s:%d: %q: only kubectl, make, export and go commands may appear in console blocks", b.file, c.line, c.text))
					}
					args, err := splitCommand(c.text)
					Expect(err).NotTo(HaveOccurred(), "%s:%d: %q", b.file, c.line, c.text)
					for i, a := range args {
						a = strings.ReplaceAll(a, "usersuccess-demo", ns)
						if p, ok := files[a]; ok {
							a = p
						}
						args[i] = a
					}
					out, errOut, err := testEnv.Kubectl(args[1:]...)
					GinkgoWriter.Printf("$ %s\n%s%s", strings.Join(args, " "), out, errOut)
					Expect(err).NotTo(HaveOccurred(), "%s:%d: %q failed: %s", b.file, c.line, c.text, errOut)
					ran++
				}
			}
		}
		Expect(ran).To(BeNumerically(">", 5))
	})

	It("parses the Grafana dashboard and the alerts, and every metric they name is registered", func() {
		names := map[string][]string{} // metric → where it is used

		data, err := os.ReadFile(filepath.Join(repoRoot, "config", "grafana", "persona-operator-dashboard.json"))
		Expect(err).NotTo(HaveOccurred())
		var dash map[string]any
		Expect(json.Unmarshal(data, &dash)).To(Succeed(), "the dashboard is not valid JSON")
		Expect(dash["panels"]).NotTo(BeEmpty())
		exprs := 0
		walkJSON(dash, func(key string, v any) {
			s, ok := v.(string)
			if !ok {
				return
			}
			switch {
			case key == "expr":
				exprs++
				for _, m := range promQLMetrics(s) {
					names[m] = append(names[m], "dashboard")
				}
			case (key == "query" || key == "definition") && strings.HasPrefix(s, "label_values("):
				sel := strings.TrimPrefix(s, "label_values(")
				if i := strings.LastIndex(sel, ","); i >= 0 {
					sel = sel[:i]
				}
				for _, m := range promQLMetrics(sel) {
					names[m] = append(names[m], "dashboard variable")
				}
			}
		})
		Expect(exprs).To(BeNumerically(">", 10))
		// The panels the operations guide promises.
		for _, m := range []string{
			"persona_members", "persona_entered_total", "persona_exited_total", "persona_evaluation_duration_seconds_bucket",
			"persona_datasource_syncs_total", "persona_datasource_sync_duration_seconds_bucket", "persona_datasource_records",
			"persona_playbook_runs", "persona_playbook_jobs_launched_total",
		} {
			Expect(names).To(HaveKey(m), "the dashboard has no panel on %s", m)
		}

		data, err = os.ReadFile(filepath.Join(repoRoot, "config", "prometheus", "alerts.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var rule struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Spec       struct {
				Groups []struct {
					Name  string `json:"name"`
					Rules []struct {
						Alert       string            `json:"alert"`
						Expr        string            `json:"expr"`
						Labels      map[string]string `json:"labels"`
						Annotations map[string]string `json:"annotations"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"spec"`
		}
		Expect(yaml.Unmarshal(data, &rule)).To(Succeed())
		Expect(rule.Kind).To(Equal("PrometheusRule"))
		alerts := 0
		for _, g := range rule.Spec.Groups {
			for _, r := range g.Rules {
				Expect(r.Alert).NotTo(BeEmpty())
				Expect(r.Labels).To(HaveKey("severity"), r.Alert)
				Expect(r.Annotations).To(HaveKey("summary"), r.Alert)
				ms := promQLMetrics(r.Expr)
				Expect(ms).NotTo(BeEmpty(), "alert %s names no metric", r.Alert)
				for _, m := range ms {
					names[m] = append(names[m], "alert "+r.Alert)
				}
				alerts++
			}
		}
		Expect(alerts).To(BeNumerically(">", 5))
		Expect(names).To(HaveKey("persona_playbook_runs"))

		// Metric names the operations guide documents.
		ops, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
		Expect(err).NotTo(HaveOccurred())
		for _, m := range regexp.MustCompile("`((?:persona|controller_runtime|workqueue|rest_client|leader_election|process|go)_[a-z0-9_]+)").FindAllStringSubmatch(string(ops), -1) {
			names[m[1]] = append(names[m[1]], "docs/operations.md")
		}

		Expect(metricRegistered("persona_no_such_metric_total")).To(BeFalse(), "the registration probe must tell names apart")
		var unknown []string
		for m, where := range names {
			if !metricRegistered(m) {
				unknown = append(unknown, fmt.Sprintf("%s (%s)", m, strings.Join(where, ", ")))
			}
		}
		sort.Strings(unknown)
		Expect(unknown).To(BeEmpty(), "metrics the manager does not register")
	})
})

// demoLikeNamespace sets up a namespace as hack/demo.sh does, at a smaller
// scale: the data ConfigMaps (with the samples' records), the DataSources of
// config/demo, then the sample personas and playbooks; it waits until the
// personas are Ready, which is where `make demo` hands over to the reader.
func demoLikeNamespace() string {
	GinkgoHelper()
	ns := newNamespace()
	inline := func(file string) string {
		data, err := os.ReadFile(filepath.Join(repoRoot, "config", "samples", file))
		Expect(err).NotTo(HaveOccurred())
		var ds v1alpha1.DataSource
		Expect(yaml.Unmarshal(data, &ds)).To(Succeed())
		return ds.Spec.Inline.Data
	}
	tickets := `{"user_id":"u-1","ticket_id":"T-1","status":"open","priority":"urgent","category":"bug","created_at":"2026-11-01T00:00:00Z"}
{"user_id":"u-3","ticket_id":"T-2","status":"closed","priority":"low","category":"how_to","created_at":"2026-10-01T00:00:00Z"}
`
	for name, data := range map[string]map[string]string{
		"demo-accounts":         {"accounts.csv": inline("personas_v1alpha1_datasource_accounts.yaml")},
		"demo-users":            {"users.ndjson": inline("personas_v1alpha1_datasource_users.yaml")},
		"demo-feature-requests": {"feature-requests.csv": inline("personas_v1alpha1_datasource_feature_requests.yaml")},
		"demo-tickets":          {"tickets.ndjson": tickets},
	} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
		Expect(k8sClient.Create(ctx, cm)).To(Succeed())
	}
	var files []string
	for _, pattern := range []string{"config/demo/*.yaml", "config/samples/personas_v1alpha1_persona_*.yaml", "config/samples/personas_v1alpha1_playbook_*.yaml"} {
		m, err := filepath.Glob(filepath.Join(repoRoot, pattern))
		Expect(err).NotTo(HaveOccurred())
		Expect(m).NotTo(BeEmpty(), pattern)
		files = append(files, m...)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		Expect(err).NotTo(HaveOccurred())
		for _, o := range docObjects(docBlock{file: f, text: string(data)}) {
			o.SetNamespace(ns)
			Expect(k8sClient.Create(ctx, o)).To(Succeed(), f)
		}
	}
	// The sample playbook would go on launching Jobs while later specs run.
	DeferCleanup(func() {
		Expect(k8sClient.DeleteAllOf(ctx, &v1alpha1.Playbook{}, client.InNamespace(ns))).To(Succeed())
	})
	Eventually(func(g Gomega) {
		var list v1alpha1.PersonaList
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).NotTo(BeEmpty())
		for _, p := range list.Items {
			g.Expect(personaReady(ns, p.Name)).To(Equal("True/Succeeded"), p.Name)
		}
	}, "60s").Should(Succeed())
	return ns
}

// consoleCommand is one `$ ` command of a console block, continuations joined.
type consoleCommand struct {
	line int
	text string
}

func consoleCommands(b docBlock) []consoleCommand {
	var out []consoleCommand
	lines := strings.Split(b.text, "\n")
	for i := 0; i < len(lines); i++ {
		cmd, ok := strings.CutPrefix(lines[i], "$ ")
		if !ok {
			continue
		}
		c := consoleCommand{line: b.line + 1 + i}
		for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
			i++
			cmd = strings.TrimSuffix(cmd, "\\") + " " + strings.TrimSpace(lines[i])
		}
		c.text = cmd
		out = append(out, c)
	}
	return out
}

// splitCommand splits a command line as a POSIX shell would for the simple
// commands the docs use: words, single and double quotes (no expansion inside
// double quotes), and a trailing comment. Anything needing a shell (pipes,
// redirections, substitutions, variables) is an error: such commands belong in
// sh blocks, which are not run.
func splitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return nil, errors.New("unterminated double quote")
			}
			q := s[i+1 : i+1+j]
			if strings.ContainsAny(q, "$`\\") {
				return nil, errors.New("expansion inside double quotes needs a shell")
			}
			cur.WriteString(q)
			i += j + 1
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			i = len(s)
		case strings.IndexByte("|&;<>()$`\\*?", c) >= 0:
			return nil, fmt.Errorf("%q needs a shell", c)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	return words, nil
}

// walkJSON calls fn for every key and value of a decoded JSON document.
func walkJSON(v any, fn func(key string, v any)) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			fn(k, e)
			walkJSON(e, fn)
		}
	case []any:
		for _, e := range t {
			walkJSON(e, fn)
		}
	}
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\[\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promKeywords = map[string]bool{
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true,
	}
)

// promQLMetrics returns the metric names a PromQL expression selects: what is
// left after removing strings, label matchers, ranges, grouping clauses,
// function names, keywords and numbers.
func promQLMetrics(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		if loc[0] > 0 && (isDigit(s[loc[0]-1]) || s[loc[0]-1] == '.' || s[loc[0]-1] == '$') {
			continue // part of a number (1e3) or a variable
		}
		name := s[loc[0]:loc[1]]
		if promKeywords[strings.ToLower(name)] || strings.HasPrefix(strings.TrimLeft(s[loc[1]:], " \t\n"), "(") {
			continue
		}
		out = append(out, name)
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// metricRegistered reports whether controller-runtime's registry (what the
// manager serves at /metrics) has a metric of this name, or, for a histogram's
// _bucket, _sum and _count series, of its base name. A registry only lists
// series that have values, so registration is probed: registering another
// collector under a registered name fails.
func metricRegistered(name string) bool {
	if probeRegistered(name) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && probeRegistered(base) {
			return true
		}
	}
	return false
}

func probeRegistered(name string) bool {
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "docs_test probe"})
	err := metrics.Registry.Register(probe)
	if err == nil {
		metrics.Registry.Unregister(probe)
		return false
	}
	var are prometheus.AlreadyRegisteredError
	return errors.As(err, &are) || strings.Contains(err.Error(), "same fully-qualified name")
}
