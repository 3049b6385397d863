package query

import (
	"context"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/query/report"
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

// sources returns the DataSources a persona reads (nil: all of the namespace),
// or why it cannot be evaluated yet: the same rules as the Persona controller,
// which never evaluates a half-loaded store.
func (h *Handler) sources(ctx context.Context, p *v1alpha1.Persona) ([]string, *httpError) {
	var list v1alpha1.DataSourceList
	if err := h.Reader.List(ctx, &list, client.InNamespace(p.Namespace)); err != nil {
		return nil, errInternal("listing DataSources", err)
	}
	exists := map[string]bool{}
	var selected, missing, loading []string
	for _, ds := range list.Items {
		exists[ds.Name] = true
		if len(p.Spec.DataSources) == 0 {
			selected = append(selected, ds.Name)
		}
	}
	for _, ref := range p.Spec.DataSources {
		if !exists[ref.Name] {
			missing = append(missing, ref.Name)
			continue
		}
		selected = append(selected, ref.Name)
	}
	ns := h.Store.Namespace(p.Namespace)
	for _, name := range selected {
		if _, _, ok := ns.Loaded(name); !ok {
			loading = append(loading, name)
		}
	}
	sort.Strings(selected)
	sort.Strings(loading)
	switch {
	case len(missing) > 0:
		return nil, errUnavailable("DataSources not found: " + strings.Join(missing, ", "))
	case len(selected) == 0:
		return nil, errUnavailable("no DataSources in namespace " + p.Namespace)
	case len(loading) > 0:
		return nil, errUnavailable("waiting for DataSources to load: " + strings.Join(loading, ", "))
	}
	return selected, nil
}

// recorded returns the members in a persona's slices, sorted by user id. Only
// slices the persona controls count: a slice left by a deleted persona of the
// same name is not its membership.
func (h *Handler) recorded(ctx context.Context, p *v1alpha1.Persona) ([]report.Member, *httpError) {
	var slices v1alpha1.PersonaMembershipList
	if err := h.Reader.List(ctx, &slices, client.InNamespace(p.Namespace), client.MatchingLabels{v1alpha1.PersonaLabel: p.Name}); err != nil {
		return nil, errInternal("listing PersonaMemberships", err)
	}
	var out []report.Member
	for i := range slices.Items {
		s := &slices.Items[i]
		if !metav1.IsControlledBy(s, p) {
			continue
		}
		for _, m := range s.Members {
			out = append(out, report.Member{UserID: m.UserID, AccountID: m.AccountID, EnteredAt: m.EnteredAt.Time})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out, nil
}

// runs returns a playbook's ledger, one run per user.
func (h *Handler) runs(ctx context.Context, pb *v1alpha1.Playbook) (map[string]v1alpha1.PlaybookRun, *httpError) {
	var list v1alpha1.PlaybookProgressList
	if err := h.Reader.List(ctx, &list, client.InNamespace(pb.Namespace), client.MatchingLabels{v1alpha1.PlaybookLabel: pb.Name}); err != nil {
		return nil, errInternal("listing PlaybookProgresses", err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	out := map[string]v1alpha1.PlaybookRun{}
	for i := range list.Items {
		if !metav1.IsControlledBy(&list.Items[i], pb) {
			continue
		}
		for _, r := range list.Items[i].Runs {
			if _, ok := out[r.UserID]; !ok {
				out[r.UserID] = r
			}
		}
	}
	return out, nil
}
