package query

import (
	"context"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/persona"
	"github.com/usersuccess/persona-operator/internal/playbook"
	"github.com/usersuccess/persona-operator/internal/queryapi"
)

// The objects the endpoint reads, through the manager's cache: the manager
// already watches them all.
// +kubebuilder:rbac:groups=personas.usersuccess.io,resources=datasources;personas;playbooks,verbs=get;list;watch
// +kubebuilder:rbac:groups=personas.usersuccess.io,resources=personamemberships;playbookprogresses,verbs=get;list;watch

// persona reads a Persona; found is false when it does not exist.
func (h *Handler) persona(ctx context.Context, namespace, name string) (*v1alpha1.Persona, bool, *httpError) {
	var p v1alpha1.Persona
	err := h.Reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &p)
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, errInternal("reading the persona", err)
	}
	return &p, true, nil
}

// sources returns the DataSources a persona reads, or why it cannot be
// evaluated yet: persona.SelectSources, the Persona controller's decision,
// which never evaluates a store lacking a source the rule reads.
func (h *Handler) sources(ctx context.Context, p *v1alpha1.Persona) (persona.Selection, *httpError) {
	var list v1alpha1.DataSourceList
	if err := h.Reader.List(ctx, &list, client.InNamespace(p.Namespace)); err != nil {
		return persona.Selection{}, errInternal("listing DataSources", err)
	}
	ns := h.Store.Namespace(p.Namespace)
	sel := persona.SelectSources(&p.Spec, p.Namespace, list.Items, func(name string) bool {
		_, _, ok := ns.Loaded(name)
		return ok
	})
	switch {
	case sel.Invalid != nil:
		return sel, errInvalid(sel.Invalid.Error())
	case sel.NotLoaded != "":
		return sel, errConflict(sel.NotLoaded)
	case sel.Wait != "":
		return sel, errUnavailable(sel.Wait)
	}
	return sel, nil
}

// recorded returns the members in a persona's slices, sorted by user id. Only
// slices the persona controls count (membership.Owned), as for the
// controllers: a slice left by a deleted persona of the same name is not its
// membership.
func (h *Handler) recorded(ctx context.Context, p *v1alpha1.Persona) ([]queryapi.Member, *httpError) {
	var slices v1alpha1.PersonaMembershipList
	if err := h.Reader.List(ctx, &slices, client.InNamespace(p.Namespace), client.MatchingLabels{v1alpha1.PersonaLabel: p.Name},
		client.UnsafeDisableDeepCopy); err != nil { // read-only
		return nil, errInternal("listing PersonaMemberships", err)
	}
	var out []queryapi.Member
	for _, s := range membership.Owned(p, slices.Items) {
		for _, m := range s.Members {
			out = append(out, queryapi.Member{UserID: m.UserID, AccountID: m.AccountID, EnteredAt: m.EnteredAt.Time})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out, nil
}

// runs returns a playbook's ledger, one run per user, read as the Playbook
// controller reads it (membership.Owned, playbook.Runs).
func (h *Handler) runs(ctx context.Context, pb *v1alpha1.Playbook) (map[string]v1alpha1.PlaybookRun, *httpError) {
	var list v1alpha1.PlaybookProgressList
	if err := h.Reader.List(ctx, &list, client.InNamespace(pb.Namespace), client.MatchingLabels{v1alpha1.PlaybookLabel: pb.Name},
		client.UnsafeDisableDeepCopy); err != nil { // read-only
		return nil, errInternal("listing PlaybookProgresses", err)
	}
	return playbook.Runs(playbook.LedgerSlices(membership.Owned(pb, list.Items))), nil
}
