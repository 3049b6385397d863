package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/persona"
	"github.com/usersuccess/persona-operator/internal/playbook"
	"github.com/usersuccess/persona-operator/internal/preview"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/queryapi"
)

// previewTimeout bounds one preview, evaluation included: the evaluation
// holds the namespace's read lock, which the DataSource controller's writes
// to that namespace wait for. A variable for the tests.
var previewTimeout = 30 * time.Second

// preview answers POST …/personas/NAME/preview: the Persona in the body,
// evaluated as the controller would, compared with the live one. It stops
// when the request is cancelled (the client went away) or after
// previewTimeout.
func (h *Handler) preview(req request) (any, *httpError) {
	ctx, cancel := context.WithTimeout(req.http.Context(), previewTimeout)
	defer cancel()
	p, herr := decodePersona(req)
	if herr != nil {
		return nil, herr
	}
	sample, herr := sampleSize(req.http)
	if herr != nil {
		return nil, herr
	}
	sel, herr := h.sources(ctx, p)
	if herr != nil {
		return nil, herr
	}
	cur, herr := h.current(ctx, p)
	if herr != nil {
		return nil, herr
	}
	now := h.now()
	ev, herr := h.evaluate(ctx, p, sel, cur, now)
	if herr != nil {
		return nil, herr
	}
	entered, exited := preview.Diff(cur.recorded, ev.Matching)
	in := preview.Input{Persona: p.Name, After: playbook.TargetOf(p), Entered: entered, Exited: exited, Now: now}
	if cur.live != nil {
		before := playbook.TargetOf(cur.live)
		in.Before = &before
	}
	launches, herr := h.launches(ctx, cur.playbooks, in)
	if herr != nil {
		return nil, herr
	}
	return &queryapi.Preview{
		Namespace: p.Namespace, Persona: p.Name, Now: now, Exists: cur.live != nil, Sources: sel.Sources,
		Members: len(ev.Matching), Sample: preview.Sample(preview.SortedIDs(ev.Matching), sample),
		EvaluationErrors: ev.Errors, Entered: preview.Change(entered, sample), Exited: preview.Change(exited, sample),
		Insights: ev.Insights, Playbooks: launches,
	}, nil
}

// current is what the preview compares with: the live persona of that name
// (nil if none), its recorded members, the namespace's Playbooks.
type current struct {
	live      *v1alpha1.Persona
	recorded  []queryapi.Member
	playbooks []v1alpha1.Playbook
}

func (h *Handler) current(ctx context.Context, p *v1alpha1.Persona) (current, *httpError) {
	var c current
	live, exists, herr := h.persona(ctx, p.Namespace, p.Name)
	if herr != nil {
		return c, herr
	}
	if exists {
		c.live = live
		if c.recorded, herr = h.recorded(ctx, live); herr != nil {
			return c, herr
		}
	}
	c.playbooks, herr = h.playbooks(ctx, p.Namespace)
	return c, herr
}

// evaluate compiles and evaluates the persona over the store, as the
// controller does (persona.Compile, persona.Evaluate, persona.KeepAbsent), and
// like it refuses to evaluate a rule reading user.playbooks before every
// Playbook has published its runs (right after a manager restart): that would
// show exits that will not happen. Once ctx is done the rule and insights
// stop evaluating (rule.Program.WithContext), the namespace's read lock is
// released, and the answer is an error, not a partial result.
func (h *Handler) evaluate(ctx context.Context, p *v1alpha1.Persona, sel persona.Selection, cur current, now time.Time) (persona.Evaluation, *httpError) {
	var ev persona.Evaluation
	var compileErr error
	var unpublished []string
	if err := ctx.Err(); err != nil {
		return ev, stopped(err)
	}
	h.Store.Namespace(p.Namespace).Read(sel.Sources, func(v *profile.View) {
		c, err := persona.Compile(&p.Spec, v.Schema())
		if err != nil {
			compileErr = err
			return
		}
		c = c.WithContext(ctx)
		if unpublished = persona.Unpublished(c, v, playbookNames(cur.playbooks)); len(unpublished) > 0 {
			return
		}
		ev = persona.Evaluate(v, c, now, time.Now)
		if sel.Partial {
			recorded := make(map[string]string, len(cur.recorded))
			for _, m := range cur.recorded {
				recorded[m.UserID] = m.AccountID
			}
			persona.KeepAbsent(&ev, v, recorded)
		}
	})
	switch {
	case compileErr != nil:
		return ev, errInvalid(compileErr.Error())
	case len(unpublished) > 0:
		return ev, errUnavailable(persona.WaitingForPlaybooks(unpublished))
	case ctx.Err() != nil:
		return ev, stopped(ctx.Err())
	}
	return ev, nil
}

// stopped is the answer to a preview cancelled or past previewTimeout.
func stopped(err error) *httpError {
	if errors.Is(err, context.DeadlineExceeded) {
		return errUnavailable(fmt.Sprintf("the preview took longer than %s and was stopped: "+
			"the rule or its insights are too slow over this namespace's profiles", previewTimeout))
	}
	return errUnavailable("the preview was cancelled: " + err.Error())
}

// playbooks lists the namespace's Playbooks, those being deleted aside (as
// the controllers see them), sorted by name.
func (h *Handler) playbooks(ctx context.Context, namespace string) ([]v1alpha1.Playbook, *httpError) {
	var list v1alpha1.PlaybookList
	if err := h.Reader.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, errInternal("listing Playbooks", err)
	}
	out := list.Items[:0]
	for _, pb := range list.Items {
		if pb.DeletionTimestamp.IsZero() {
			out = append(out, pb)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func playbookNames(pbs []v1alpha1.Playbook) []string {
	names := make([]string, len(pbs))
	for i := range pbs {
		names[i] = pbs[i].Name
	}
	return names
}

// launches lists the playbooks the change would launch, reading the ledgers of
// those whose trigger matches.
func (h *Handler) launches(ctx context.Context, playbooks []v1alpha1.Playbook, in preview.Input) ([]queryapi.PlaybookLaunch, *httpError) {
	in.Runs = map[string]map[string]v1alpha1.PlaybookRun{}
	for i := range playbooks {
		pb := &playbooks[i]
		after, _, errAfter := preview.Matches(pb, in.After)
		before := false
		if in.Before != nil {
			before, _, _ = preview.Matches(pb, *in.Before)
		}
		if errAfter != nil || (!after && !before) {
			continue
		}
		runs, herr := h.runs(ctx, pb)
		if herr != nil {
			return nil, herr
		}
		in.Runs[pb.Name] = runs
	}
	return preview.Launches(playbooks, in), nil
}

// decodePersona reads the body: one Persona, strictly (an unknown field is a
// typo that would silently change what is previewed).
func decodePersona(req request) (*v1alpha1.Persona, *httpError) {
	body, err := io.ReadAll(io.LimitReader(req.http.Body, maxBody+1))
	if err != nil {
		return nil, errBadRequest("reading the body: " + err.Error())
	}
	if len(body) > maxBody {
		return nil, errBadRequest(fmt.Sprintf("the body must be a Persona as JSON of at most %d bytes", maxBody))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var p v1alpha1.Persona
	if err := dec.Decode(&p); err != nil {
		return nil, errBadRequest("the body is not a Persona: " + err.Error())
	}
	if p.APIVersion != "" && p.APIVersion != v1alpha1.GroupVersion.String() || p.Kind != "" && p.Kind != "Persona" {
		return nil, errBadRequest(fmt.Sprintf("the body is a %s %s, not a %s Persona", p.APIVersion, p.Kind, v1alpha1.GroupVersion))
	}
	a := req.access
	if p.Name == "" {
		p.Name = a.Name
	}
	if p.Namespace == "" {
		p.Namespace = a.Namespace
	}
	if p.Name != a.Name || p.Namespace != a.Namespace {
		return nil, errBadRequest(fmt.Sprintf("the body is persona %s/%s but the request is for %s/%s", p.Namespace, p.Name, a.Namespace, a.Name))
	}
	if p.Spec.Rule == "" {
		return nil, errInvalid("spec.rule: Required value")
	}
	return &p, nil
}

func sampleSize(r *http.Request) (int, *httpError) {
	s := r.URL.Query().Get(queryapi.SampleParam)
	if s == "" {
		return queryapi.DefaultSample, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > queryapi.MaxSample {
		return 0, errBadRequest(fmt.Sprintf("the query parameter %q must be an integer from 0 to %d, not %q", queryapi.SampleParam, queryapi.MaxSample, s))
	}
	return n, nil
}
