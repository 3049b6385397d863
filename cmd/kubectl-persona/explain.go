package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usersuccess/persona-operator/internal/queryapi"
)

func newExplainCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "explain NAME USER",
		Short: "Explain whether a user is a member: each part of the rule with the values that decided it",
		Long: `Explain evaluates the persona's rule for one user over the manager's live profiles and
shows every clause of && and ||, every comparison and the values it compared. An
attribute the profile lacks is shown as absent (a rule reading it is not true).

Needs the query endpoint (--endpoint) and get on personas/explain in the namespace.`,
		Example: `  kubectl persona explain at-risk-enterprise-decision-makers u-0042 -n cs --endpoint https://127.0.0.1:8444`,
		Args:    nameArgs("the persona's name and a user id: kubectl persona explain NAME USER", 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			out, err := o.explain(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if o.output == "json" {
				return printJSON(o.streams.Out, out)
			}
			return printExplain(o, out)
		},
	}
}

// explain asks the endpoint about one user.
func (o *options) explain(ctx context.Context, persona, user string) (*queryapi.Explain, error) {
	ec, err := o.endpointClient()
	if err != nil {
		return nil, err
	}
	ns, _, err := o.namespace()
	if err != nil {
		return nil, err
	}
	var out queryapi.Explain
	path := fmt.Sprintf(queryapi.ExplainPath, url.PathEscape(ns), url.PathEscape(persona))
	if err := ec.do(ctx, http.MethodGet, path, url.Values{queryapi.UserParam: {user}}, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func printExplain(o *options, e *queryapi.Explain) error {
	w := o.streams.Out
	account := ""
	if e.Account != "" {
		account = " (account " + e.Account + ")"
	}
	fmt.Fprintf(w, "Persona %s/%s, user %s%s, at %s\n", e.Namespace, e.Persona, e.User, account, timestamp(e.Now))
	fmt.Fprintf(w, "Rule:      %s\n", strings.ReplaceAll(strings.TrimSpace(e.Rule), "\n", "\n           "))
	fmt.Fprintf(w, "Rule now:  %s\n", verdict(e))
	if e.Recorded != nil {
		fmt.Fprintf(w, "Recorded:  member since %s\n", timestamp(e.Recorded.EnteredAt))
	} else {
		fmt.Fprintln(w, "Recorded:  not a member")
	}
	for _, warn := range e.Warnings {
		fmt.Fprintf(w, "Warning:   %s\n", warn)
	}
	if len(e.Attributes) > 0 {
		fmt.Fprintln(w)
		t := newTable(w)
		row(t, "ATTRIBUTE", "VALUE")
		for _, a := range e.Attributes {
			v := a.Value
			if a.Absent {
				v = "absent"
			}
			row(t, a.Name, v)
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	t := newTable(w)
	row(t, "VALUE", "EXPRESSION", "OPERANDS")
	writeNode(t, e.Tree, 0)
	return t.Flush()
}

func verdict(e *queryapi.Explain) string {
	switch {
	case e.Match:
		return "true: a member"
	case e.Error != "":
		return "not a member: evaluating the rule failed: " + e.Error
	}
	return "false: not a member"
}

// writeNode writes a node and its children, indented by depth.
func writeNode(t interface{ Write([]byte) (int, error) }, n queryapi.Node, depth int) {
	var ops []string
	for _, op := range n.Operands {
		ops = append(ops, op.Expression+" = "+shownValue(op.Value, op.Absent, op.Error))
	}
	if n.Error != "" && len(n.Operands) == 0 {
		ops = append(ops, "error: "+n.Error)
	}
	row(t, shownValue(n.Value, n.Absent, errMark(n.Error)), strings.Repeat("  ", depth)+nodeText(n), strings.Join(ops, ", "))
	for _, c := range n.Children {
		writeNode(t, c, depth+1)
	}
}

// nodeText names a logical node by its operator (its operands follow, one per
// line, and the whole rule is printed above); a leaf by its expression.
func nodeText(n queryapi.Node) string {
	switch n.Operator {
	case "&&":
		return "&& (all of)"
	case "||":
		return "|| (any of)"
	case "!":
		return "! (not)"
	case "?:":
		return "?: (if, then, else)"
	}
	return n.Expression
}

func errMark(err string) string {
	if err != "" {
		return "error"
	}
	return ""
}

func shownValue(v string, absent bool, err string) string {
	switch {
	case absent:
		return "absent"
	case err == "error":
		return "error"
	case err != "":
		return "error: " + err
	}
	return v
}
