package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/queryapi"
)

// previewFlags are preview's own flags.
type previewFlags struct {
	file              string
	sample            int
	maxEnter, maxExit int
}

func newPreviewCommand(o *options) *cobra.Command {
	f := &previewFlags{}
	cmd := &cobra.Command{
		Use:   "preview -f persona.yaml",
		Short: "Dry-run a Persona: members, who would enter and exit, which Playbooks would launch",
		Long: `Preview evaluates a Persona that is not applied (or edited) over the manager's live
profiles, exactly as the controller would, and compares the result with the live
persona of the same name: who would enter, who would exit, which Playbooks of the
namespace would launch runs and for how many users. Nothing is written.

Exit codes, for CI checks of a GitOps pull request:
  0  the preview is within the limits
  1  the preview could not be made (no endpoint, not authorized, data not loaded, ...)
  2  the Persona is invalid (its rule or an insight does not compile: CEL's message and position)
  3  more users would enter than --max-enter, or exit than --max-exit

Needs the query endpoint (--endpoint) and get on personas/preview in the namespace.`,
		Example: `  kubectl persona preview -f config/samples/personas_v1alpha1_persona_at_risk.yaml -n cs
  kubectl persona preview -f persona.yaml --max-enter 100 --max-exit 0 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if f.file == "" {
				return errors.New("-f FILE (the Persona to preview; - for standard input) is required")
			}
			if f.sample < 0 || f.sample > queryapi.MaxSample {
				return fmt.Errorf("--sample must be from 0 to %d, not %d", queryapi.MaxSample, f.sample)
			}
			out, err := o.preview(cmd.Context(), f)
			if err != nil {
				return err
			}
			if err := o.printPreview(out); err != nil {
				return err
			}
			return f.check(out)
		},
	}
	cmd.Flags().StringVarP(&f.file, "filename", "f", "", "The Persona manifest to preview (YAML or JSON; - for standard input).")
	cmd.Flags().IntVar(&f.sample, "sample", queryapi.DefaultSample, "How many member ids to list (members, entering, exiting).")
	cmd.Flags().IntVar(&f.maxEnter, "max-enter", -1, "Exit with code 3 if more users than this would enter; -1: no limit.")
	cmd.Flags().IntVar(&f.maxExit, "max-exit", -1, "Exit with code 3 if more users than this would exit; -1: no limit.")
	return cmd
}

// preview sends the file's Persona to the endpoint.
func (o *options) preview(ctx context.Context, f *previewFlags) (*queryapi.Preview, error) {
	p, err := o.previewTarget(f.file)
	if err != nil {
		return nil, &codeError{code: exitInvalid, err: err}
	}
	ec, err := o.endpointClient()
	if err != nil {
		return nil, err
	}
	var out queryapi.Preview
	path := fmt.Sprintf(queryapi.PreviewPath, url.PathEscape(p.Namespace), url.PathEscape(p.Name))
	q := url.Values{queryapi.SampleParam: {strconv.Itoa(f.sample)}}
	if err := ec.do(ctx, http.MethodPost, path, q, p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// check applies --max-enter and --max-exit.
func (f *previewFlags) check(p *queryapi.Preview) error {
	var over []string
	if f.maxEnter >= 0 && p.Entered.Count > f.maxEnter {
		over = append(over, fmt.Sprintf("%s would enter, more than --max-enter %d", users(p.Entered.Count), f.maxEnter))
	}
	if f.maxExit >= 0 && p.Exited.Count > f.maxExit {
		over = append(over, fmt.Sprintf("%s would exit, more than --max-exit %d", users(p.Exited.Count), f.maxExit))
	}
	if len(over) == 0 {
		return nil
	}
	return &codeError{code: exitExceeded, err: fmt.Errorf("preview of persona %s/%s: %s", p.Namespace, p.Persona, strings.Join(over, "; "))}
}

func users(n int) string {
	if n == 1 {
		return "1 user"
	}
	return strconv.Itoa(n) + " users"
}

// previewTarget reads the file and settles the namespace like kubectl apply:
// the manifest's, else -n's, else the kubeconfig's; a manifest and -n that
// disagree are an error.
func (o *options) previewTarget(path string) (*v1alpha1.Persona, error) {
	p, err := readPersona(path, o.streams.In)
	if err != nil {
		return nil, err
	}
	ns, explicit, err := o.namespace()
	if err != nil {
		return nil, err
	}
	switch {
	case p.Namespace == "":
		p.Namespace = ns
	case explicit && p.Namespace != ns:
		return nil, fmt.Errorf("the namespace of the manifest (%q) does not match --namespace %q", p.Namespace, ns)
	}
	return p, nil
}

// readPersona parses exactly one Persona, strictly: an unknown or duplicated
// field is an error, not something silently dropped from the preview.
func readPersona(path string, stdin io.Reader) (*v1alpha1.Persona, error) {
	data, err := readFile(path, stdin)
	if err != nil {
		return nil, err
	}
	docs, err := documents(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("%s holds %d documents: preview takes one Persona per file", path, len(docs))
	}
	var p v1alpha1.Persona
	if err := yaml.UnmarshalStrict(docs[0], &p); err != nil {
		return nil, fmt.Errorf("%s: not a valid Persona: %w", path, err)
	}
	if p.Kind != "Persona" || p.APIVersion != v1alpha1.GroupVersion.String() {
		return nil, fmt.Errorf("%s: a %q of %q, not a Persona of %s", path, p.Kind, p.APIVersion, v1alpha1.GroupVersion)
	}
	if p.Name == "" {
		return nil, fmt.Errorf("%s: metadata.name is required: the preview compares with the live persona of that name", path)
	}
	if strings.TrimSpace(p.Spec.Rule) == "" {
		return nil, fmt.Errorf("%s: spec.rule is required", path)
	}
	return &p, nil
}

// maxFile bounds what is read: a Persona is a few KiB.
const maxFile = 1 << 20

func readFile(path string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a Persona", path, maxFile)
	}
	return data, nil
}

// documents splits YAML on ---, dropping empty documents (comments only).
func documents(data []byte) ([][]byte, error) {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out [][]byte
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var v any
		if err := yaml.Unmarshal(doc, &v); err != nil {
			return nil, err
		}
		if v != nil {
			out = append(out, doc)
		}
	}
}

func (o *options) printPreview(p *queryapi.Preview) error {
	if o.output == "json" {
		return printJSON(o.streams.Out, p)
	}
	w := o.streams.Out
	live := "a new persona: everyone enters"
	if p.Exists {
		live = "compared with the live persona"
	}
	fmt.Fprintf(w, "Preview of persona %s/%s (%s), at %s\n", p.Namespace, p.Persona, live, timestamp(p.Now))
	fmt.Fprintf(w, "Sources:            %s\n", strings.Join(p.Sources, ", "))
	fmt.Fprintf(w, "Members:            %d%s\n", p.Members, ids(p.Sample, p.Members))
	fmt.Fprintf(w, "Would enter:        %d%s\n", p.Entered.Count, ids(p.Entered.Sample, p.Entered.Count))
	fmt.Fprintf(w, "Would exit:         %d%s\n", p.Exited.Count, ids(p.Exited.Sample, p.Exited.Count))
	if p.EvaluationErrors > 0 {
		fmt.Fprintf(w, "Evaluation errors:  %d (profiles the rule could not be evaluated for, e.g. an absent attribute: not members)\n", p.EvaluationErrors)
	}
	fmt.Fprintln(w)
	if len(p.Playbooks) == 0 {
		fmt.Fprintln(w, "No Playbook of the namespace matches this persona.")
	} else {
		t := newTable(w)
		row(t, "PLAYBOOK", "TRIGGER", "BY", "WOULD LAUNCH FOR", "SKIPPED", "NOTE")
		for _, pb := range p.Playbooks {
			row(t, pb.Name, string(pb.Trigger), pb.By, strconv.Itoa(pb.Users), strconv.Itoa(pb.Skipped), playbookNote(pb))
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}
	if len(p.Insights) > 0 {
		fmt.Fprintln(w)
		return printInsights(w, p.Insights)
	}
	return nil
}

// ids renders a sample: " (a, b, c, …)".
func ids(sample []string, total int) string {
	if len(sample) == 0 {
		return ""
	}
	s := strings.Join(sample, ", ")
	if total > len(sample) {
		s += ", …"
	}
	return " (" + s + ")"
}

func playbookNote(pb queryapi.PlaybookLaunch) string {
	var notes []string
	if pb.Error != "" {
		notes = append(notes, "error: "+pb.Error)
	}
	if pb.StopsMatching {
		notes = append(notes, "no longer matches the persona")
	}
	if pb.Suspended {
		notes = append(notes, "suspended: launches wait")
	}
	return strings.Join(notes, "; ")
}
