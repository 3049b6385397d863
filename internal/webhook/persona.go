// Package webhook holds the admission webhooks: a Persona's rule and insights are
// compiled and type-checked against the attribute schema its namespace's
// DataSources declare, so a typo or a type mismatch is rejected by kubectl apply
// with CEL's message and position, not discovered later in status.
package webhook

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/persona"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/sqlrule"
)

// +kubebuilder:webhook:path=/validate-personas-usersuccess-io-v1alpha1-persona,mutating=false,failurePolicy=fail,sideEffects=None,groups=personas.usersuccess.io,resources=personas,verbs=create;update,versions=v1alpha1,name=vpersona.usersuccess.io,admissionReviewVersions=v1

// PersonaValidator rejects rules that do not compile against the namespace's
// declared schema.
type PersonaValidator struct {
	Reader client.Reader
}

// SetupPersonaWebhook registers the validator with the manager's webhook server.
func SetupPersonaWebhook(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &v1alpha1.Persona{}).
		// Uncached: a DataSource applied just before the Persona must count.
		WithValidator(&PersonaValidator{Reader: mgr.GetAPIReader()}).
		Complete()
}

// ValidateCreate implements admission.Validator.
func (v *PersonaValidator) ValidateCreate(ctx context.Context, p *v1alpha1.Persona) (admission.Warnings, error) {
	return v.validate(ctx, p)
}

// ValidateUpdate implements admission.Validator.
func (v *PersonaValidator) ValidateUpdate(ctx context.Context, _, p *v1alpha1.Persona) (admission.Warnings, error) {
	return v.validate(ctx, p)
}

// ValidateDelete implements admission.Validator.
func (v *PersonaValidator) ValidateDelete(context.Context, *v1alpha1.Persona) (admission.Warnings, error) {
	return nil, nil
}

func (v *PersonaValidator) validate(ctx context.Context, p *v1alpha1.Persona) (admission.Warnings, error) {
	var list v1alpha1.DataSourceList
	if err := v.Reader.List(ctx, &list, client.InNamespace(p.Namespace)); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("listing DataSources: %w", err))
	}
	decls, warnings := declarations(list.Items, p.Spec.DataSources)
	if len(decls) == 0 {
		// GitOps may apply a Persona before its DataSources: accept it, and the
		// controller checks the rule once they exist.
		return append(warnings, "no DataSources declare attributes in this namespace yet: the rule's attributes "+
			"could not be type-checked; the Persona reports InvalidRule if they do not exist"), nil
	}
	var errs field.ErrorList
	c, problems := persona.Check(&p.Spec, profile.DeclaredSchema(decls))
	for _, pr := range problems {
		errs = append(errs, field.Invalid(pr.Path, pr.Value, pr.Err.Error()))
	}
	if len(problems) == 0 && p.Spec.Evaluation == v1alpha1.EvaluationDatabase {
		if _, err := persona.ChooseEvaluation(&p.Spec, c.Rule, list.Items); err != nil {
			errs = append(errs, databaseError(p, err))
		}
	}
	if len(errs) > 0 {
		return warnings, apierrors.NewInvalid(v1alpha1.GroupVersion.WithKind("Persona").GroupKind(), p.Name, errs)
	}
	return warnings, nil
}

// databaseError is why a persona can't be evaluated in the database: on the
// rule, with the sub-expression's position, when the rule is the reason.
func databaseError(p *v1alpha1.Persona, err error) *field.Error {
	var r *sqlrule.Refusal
	if errors.As(err, &r) && r.Expr != "" {
		return field.Invalid(field.NewPath("spec", "rule"), p.Spec.Rule,
			"cannot be evaluated in the database (spec.evaluation: Database): "+err.Error())
	}
	return field.Invalid(field.NewPath("spec", "evaluation"), p.Spec.Evaluation, "cannot be evaluated in the database: "+err.Error())
}

// declarations turns DataSource specs into declaration-only SourceData, limited
// to the persona's dataSources when it names them.
func declarations(items []v1alpha1.DataSource, only []v1alpha1.LocalObjectReference) ([]*profile.SourceData, admission.Warnings) {
	want := map[string]bool{}
	for _, r := range only {
		want[r.Name] = true
	}
	var out []*profile.SourceData
	var warnings admission.Warnings
	for i := range items {
		ds := &items[i]
		if len(want) > 0 && !want[ds.Name] {
			continue
		}
		d, err := profile.Declared(ds)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("DataSource %s is ignored: %v", ds.Name, err))
			continue
		}
		out = append(out, d)
	}
	return out, warnings
}
