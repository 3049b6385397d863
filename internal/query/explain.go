package query

import (
	"fmt"
	"time"

	"github.com/google/cel-go/common/types"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/explain"
	"github.com/usersuccess/persona-operator/internal/persona"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/queryapi"
)

// explain answers GET …/personas/NAME/explain?user=ID for the live persona.
func (h *Handler) explain(req request) (any, *httpError) {
	ctx := req.http.Context()
	userID := req.http.URL.Query().Get(queryapi.UserParam)
	if userID == "" {
		return nil, errBadRequest("the query parameter \"user\" (the user id to explain) is required")
	}
	p, found, herr := h.persona(ctx, req.access.Namespace, req.access.Name)
	if herr != nil {
		return nil, herr
	}
	if !found {
		return nil, errNotFound(fmt.Sprintf("personas.personas.usersuccess.io %q not found in namespace %q", req.access.Name, req.access.Namespace))
	}
	sel, herr := h.sources(ctx, p)
	if herr != nil {
		return nil, herr
	}
	recorded, herr := h.recorded(ctx, p)
	if herr != nil {
		return nil, herr
	}
	playbooks, herr := h.playbooks(ctx, p.Namespace)
	if herr != nil {
		return nil, herr
	}
	now := h.now()
	out := &queryapi.Explain{Namespace: p.Namespace, Persona: p.Name, User: userID, Now: now, Rule: p.Spec.Rule, Attributes: []queryapi.Attribute{}}
	h.Store.Namespace(p.Namespace).Read(sel.Sources, func(v *profile.View) { herr = explainIn(v, p, userID, playbookNames(playbooks), now, out) })
	if herr != nil {
		return nil, herr
	}
	for i := range recorded {
		if recorded[i].UserID == userID {
			out.Recorded = &recorded[i]
		}
	}
	if p.Spec.Suspend {
		out.Warnings = append(out.Warnings, "the persona is suspended: its recorded membership is frozen")
	}
	if w := persona.DatabaseDisagrees(p, out.Match, out.Recorded != nil); w != "" {
		out.Warnings = append(out.Warnings, w)
	}
	return out, nil
}

// explainIn fills out from one view: the controller's verdict (the program
// persona.Compile makes for the controller) and the sub-expression tree
// (internal/explain).
func explainIn(v *profile.View, p *v1alpha1.Persona, userID string, playbooks []string, now time.Time, out *queryapi.Explain) *httpError {
	s := v.Schema()
	c, err := persona.Compile(&p.Spec, s)
	if err != nil {
		return errInvalid(err.Error())
	}
	for _, name := range persona.Unpublished(c, v, playbooks) {
		out.Warnings = append(out.Warnings, fmt.Sprintf("Playbook %s has not published its runs since the manager started: user.playbooks lacks them", name))
	}
	u, ok := v.User(userID)
	if !ok {
		return errNotFound(fmt.Sprintf("user %q has no profile in namespace %q (the persona's DataSources have no User record for it)", userID, p.Namespace))
	}
	out.Account = u.AccountID()
	match, evalErr := c.Rule.NewEvaluator(v, now).Match(u)
	out.Match = match
	if evalErr != nil {
		out.Error = evalErr.Error()
	}
	res, err := explain.Explain(p.Spec.Rule, s, explain.FromProfile(u, s), now)
	if err != nil {
		return errInvalid("spec.rule: " + err.Error())
	}
	out.Tree, out.Attributes = res.Tree, res.Attributes
	if tree := res.Err == nil && res.Value == types.True; tree != match {
		out.Warnings = append(out.Warnings, fmt.Sprintf(
			"the explanation evaluates to %v but the controller's evaluation to %v; the controller's verdict is the one reported", tree, match))
	}
	return nil
}
