package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// topView is the JSON output of top.
type topView struct {
	Namespace          string                   `json:"namespace"`
	Persona            string                   `json:"persona"`
	Members            int64                    `json:"members"`
	LastEvaluationTime *time.Time               `json:"lastEvaluationTime,omitempty"`
	Insights           []v1alpha1.InsightResult `json:"insights"`
}

func newTopCommand(o *options) *cobra.Command {
	var ignoreNotReady bool
	cmd := &cobra.Command{
		Use:     "top NAME",
		Short:   "Show a persona's insights (status.insights): top values, sums, averages",
		Example: `  kubectl persona top at-risk-enterprise-decision-makers -n cs`,
		Args:    nameArgs("the persona's name: kubectl persona top NAME", 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			v, err := o.top(cmd.Context(), args[0], ignoreNotReady)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return printJSON(o.streams.Out, v)
			}
			return printTop(o, v)
		},
	}
	addIgnoreNotReady(cmd, &ignoreNotReady)
	return cmd
}

func (o *options) top(ctx context.Context, name string, ignoreNotReady bool) (*topView, error) {
	_, ns, p, err := o.getPersona(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := notReadyError(p); err != nil && !ignoreNotReady {
		return nil, err
	}
	v := &topView{Namespace: ns, Persona: name, Members: p.Status.Members, Insights: p.Status.Insights}
	if v.Insights == nil {
		v.Insights = []v1alpha1.InsightResult{}
	}
	if t := p.Status.LastEvaluationTime; t != nil {
		v.LastEvaluationTime = &t.Time
	}
	return v, nil
}

func printTop(o *options, v *topView) error {
	if len(v.Insights) == 0 {
		fmt.Fprintf(o.streams.ErrOut, "Persona %s/%s has no insight results (none in spec.insights, or not evaluated yet).\n", v.Namespace, v.Persona)
		return nil
	}
	fmt.Fprintf(o.streams.Out, "Persona %s/%s: %d members, evaluated at %s\n\n", v.Namespace, v.Persona, v.Members, timeOrDash(v.LastEvaluationTime))
	return printInsights(o.streams.Out, v.Insights)
}

// printInsights writes insight results as a table; a TopValues insight takes
// one row per value.
func printInsights(w io.Writer, insights []v1alpha1.InsightResult) error {
	t := newTable(w)
	row(t, "INSIGHT", "TYPE", "VALUE", "COUNT", "MEMBERS")
	for _, in := range insights {
		name, typ := in.Name, string(in.Type)
		switch {
		case in.Error != "":
			row(t, name, typ, "error: "+in.Error, "", "")
		case in.Type == v1alpha1.InsightTopValues && len(in.Values) == 0:
			row(t, name, typ, "(no values)", "", strconv.FormatInt(in.Members, 10))
		case in.Type == v1alpha1.InsightTopValues:
			for i, val := range in.Values {
				members := ""
				if i == 0 {
					members = strconv.FormatInt(in.Members, 10)
				}
				row(t, name, typ, val.Value, strconv.FormatInt(val.Count, 10), members)
				name, typ = "", "" // once per insight, like kubectl's grouped rows
			}
		default:
			row(t, name, typ, orDash(in.Value), "", strconv.FormatInt(in.Members, 10))
		}
	}
	return t.Flush()
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return timestamp(*t)
}
