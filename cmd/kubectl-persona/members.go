package main

import (
	"container/heap"
	"context"
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/queryapi"
)

// membersPage is the JSON output of members.
type membersPage struct {
	Namespace string            `json:"namespace"`
	Persona   string            `json:"persona"`
	Total     int               `json:"total"`
	Members   []queryapi.Member `json:"members"`
	// Continue is the last user id of this page when more follow: pass it to
	// --continue for the next page.
	Continue string `json:"continue,omitempty"`
}

func newMembersCommand(o *options) *cobra.Command {
	var limit int
	var after string
	var ignoreNotReady bool
	cmd := &cobra.Command{
		Use:   "members NAME",
		Short: "List a persona's members (user, account, entered at), sorted by user id, a page at a time",
		Long: `List a persona's members from its PersonaMembership slices, sorted by user id.

Pages are keyed by user id: --continue ID lists the members after ID, so a page
never repeats or skips anyone because membership changed in between.`,
		Example: `  kubectl persona members at-risk-enterprise-decision-makers -n cs
  kubectl persona members stalled-onboarding --limit 50 --continue u-0050
  kubectl persona members stalled-onboarding --limit 0 -o json   # everyone`,
		Args: nameArgs("the persona's name: kubectl persona members NAME", 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return fmt.Errorf("--limit must be 0 (all) or more, not %d", limit)
			}
			if err := o.validate(); err != nil {
				return err
			}
			page, err := o.members(cmd.Context(), args[0], limit, after, ignoreNotReady)
			if err != nil {
				return err
			}
			return o.printMembers(page)
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "Members per page; 0 for all.")
	cmd.Flags().StringVar(&after, "continue", "", "List the members after this user id (the previous page's last).")
	addIgnoreNotReady(cmd, &ignoreNotReady)
	return cmd
}

func (o *options) members(ctx context.Context, name string, limit int, after string, ignoreNotReady bool) (*membersPage, error) {
	c, ns, p, err := o.getPersona(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := notReadyError(p); err != nil && !ignoreNotReady {
		return nil, err
	}
	pg := newPager(limit, after)
	total, err := eachMember(ctx, c, p, pg.add)
	if err != nil {
		return nil, err
	}
	members, more := pg.result()
	page := &membersPage{Namespace: ns, Persona: name, Total: total, Members: members}
	if more && len(members) > 0 {
		page.Continue = members[len(members)-1].UserID
	}
	return page, nil
}

// listChunk is how many slices one list call returns (each holds up to 1000
// members): memory stays bounded by the page, not by the persona.
const listChunk = 50

// eachMember calls fn for every member in the slices the persona controls and
// returns how many there are.
func eachMember(ctx context.Context, c client.Client, p *v1alpha1.Persona, fn func(queryapi.Member)) (int, error) {
	total := 0
	cont := ""
	for {
		var list v1alpha1.PersonaMembershipList
		opts := []client.ListOption{client.InNamespace(p.Namespace), client.MatchingLabels{v1alpha1.PersonaLabel: p.Name}, client.Limit(listChunk)}
		if cont != "" {
			opts = append(opts, client.Continue(cont))
		}
		if err := c.List(ctx, &list, opts...); err != nil {
			return 0, fmt.Errorf("listing the persona's PersonaMemberships: %w", err)
		}
		for _, s := range membership.Owned(p, list.Items) {
			for _, m := range s.Members {
				total++
				fn(queryapi.Member{UserID: m.UserID, AccountID: m.AccountID, EnteredAt: m.EnteredAt.Time})
			}
		}
		if cont = list.Continue; cont == "" {
			return total, nil
		}
	}
}

// pager keeps the limit smallest members with ids after a key.
type pager struct {
	limit int
	after string
	h     memberHeap // a max-heap by user id when limited
	more  bool
}

func newPager(limit int, after string) *pager { return &pager{limit: limit, after: after} }

func (p *pager) add(m queryapi.Member) {
	if m.UserID <= p.after {
		return
	}
	if p.limit == 0 {
		p.h = append(p.h, m)
		return
	}
	if len(p.h) < p.limit {
		heap.Push(&p.h, m)
		return
	}
	p.more = true
	if m.UserID < p.h[0].UserID {
		p.h[0] = m
		heap.Fix(&p.h, 0)
	}
}

// result returns the page, sorted, and whether members follow it.
func (p *pager) result() ([]queryapi.Member, bool) {
	out := append([]queryapi.Member{}, p.h...)
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out, p.more
}

type memberHeap []queryapi.Member

func (h memberHeap) Len() int           { return len(h) }
func (h memberHeap) Less(i, j int) bool { return h[i].UserID > h[j].UserID }
func (h memberHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *memberHeap) Push(x any)        { *h = append(*h, x.(queryapi.Member)) }
func (h *memberHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (o *options) printMembers(p *membersPage) error {
	if o.output == "json" {
		return printJSON(o.streams.Out, p)
	}
	if len(p.Members) == 0 {
		fmt.Fprintf(o.streams.ErrOut, "No members of persona %s/%s%s.\n", p.Namespace, p.Persona, afterNote(p))
		return nil
	}
	t := newTable(o.streams.Out)
	row(t, "USER", "ACCOUNT", "ENTERED AT")
	for _, m := range p.Members {
		row(t, m.UserID, orDash(m.AccountID), timestamp(m.EnteredAt))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if p.Continue != "" {
		fmt.Fprintf(o.streams.ErrOut, "%d members in all; next page: kubectl persona members %s -n %s --continue %s\n",
			p.Total, p.Persona, p.Namespace, p.Continue)
	}
	return nil
}

func afterNote(p *membersPage) string {
	if p.Total > 0 {
		return fmt.Sprintf(" after the given --continue (%d members in all)", p.Total)
	}
	return ""
}

// getPersona reads a persona through the API server with the caller's
// kubeconfig, and returns the client and namespace it used.
func (o *options) getPersona(ctx context.Context, name string) (client.Client, string, *v1alpha1.Persona, error) {
	c, err := o.apiClient()
	if err != nil {
		return nil, "", nil, err
	}
	ns, _, err := o.namespace()
	if err != nil {
		return nil, "", nil, err
	}
	var p v1alpha1.Persona
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", nil, fmt.Errorf("persona %q not found in namespace %q", name, ns)
		}
		return nil, "", nil, err
	}
	return c, ns, &p, nil
}
