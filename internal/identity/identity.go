// Package identity decides whom the manager acts as for one object: a
// ServiceAccount of the object's own namespace (impersonated, so the API
// server authorizes every read of a Secret and every Job create against the
// tenant's RBAC), or the manager itself. It also decides which ServiceAccount
// a playbook step's pod may run as, and turns an authorization failure into
// the condition the user must act on. Pure: no Kubernetes I/O.
package identity

import (
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/usersuccess/persona-operator/internal/conditions"
)

// Condition reasons of this package (Stalled=True, Ready=False).
const (
	// ReasonServiceAccountRequired: the object names no ServiceAccount, the
	// manager has no default one and runs with --require-service-account.
	ReasonServiceAccountRequired = "ServiceAccountRequired"
	// ReasonImpersonationForbidden: the manager may not act as the
	// ServiceAccount (its ClusterRole's impersonate rule does not name it).
	ReasonImpersonationForbidden = "ImpersonationForbidden"
	// ReasonAccessDenied: the acting identity may not do what the object needs
	// (read a referenced Secret, create a Job).
	ReasonAccessDenied = "AccessDenied"
	// ReasonServiceAccountNotAllowed: a step's pod template names a
	// ServiceAccount other than the acting one or the namespace's default.
	ReasonServiceAccountNotAllowed = "ServiceAccountNotAllowed"
)

// DefaultPodServiceAccount is the ServiceAccount Kubernetes gives a pod that
// names none.
const DefaultPodServiceAccount = "default"

// Policy is the manager's identity configuration (its flags).
type Policy struct {
	// DefaultServiceAccount is acted as when an object names none; empty: none.
	DefaultServiceAccount string
	// Require refuses to act as the manager: an object that names no
	// ServiceAccount while there is no default is stalled.
	Require bool
}

// Identity is whom the manager acts as for one object.
type Identity struct {
	Namespace string
	// ServiceAccount of Namespace; empty: the manager itself.
	ServiceAccount string
}

// Resolve decides the identity for an object of namespace whose spec names
// the ServiceAccount named (empty: none). The spec wins over the default; the
// manager acts as itself only when neither is set and the policy allows it.
func (p Policy) Resolve(namespace, named string) (Identity, error) {
	switch {
	case named != "":
		return Identity{Namespace: namespace, ServiceAccount: named}, nil
	case p.DefaultServiceAccount != "":
		return Identity{Namespace: namespace, ServiceAccount: p.DefaultServiceAccount}, nil
	case p.Require:
		return Identity{}, conditions.Stalledf(ReasonServiceAccountRequired,
			"spec.serviceAccountName is required: this manager runs with --require-service-account and no --default-service-account, "+
				"so it acts only as a ServiceAccount of namespace %q", namespace)
	}
	return Identity{Namespace: namespace}, nil
}

// Manager reports whether the identity is the manager itself.
func (i Identity) Manager() bool { return i.ServiceAccount == "" }

// Username is the name to impersonate (the API server's name for a
// ServiceAccount), empty for the manager.
func (i Identity) Username() string {
	if i.Manager() {
		return ""
	}
	return "system:serviceaccount:" + i.Namespace + ":" + i.ServiceAccount
}

// String names the identity in condition messages.
func (i Identity) String() string {
	if i.Manager() {
		return "the manager's own ServiceAccount"
	}
	return fmt.Sprintf("ServiceAccount %q", i.ServiceAccount)
}

// PodServiceAccount checks the ServiceAccount a step's pod template names
// (empty: the namespace's default). Creating a pod lets its creator run code
// with any ServiceAccount of the namespace (Kubernetes RBAC has no "use" check
// for ServiceAccounts), so whoever edits a Playbook could otherwise borrow a
// stronger ServiceAccount's token; a pod may run only as the namespace's
// default ServiceAccount or as the identity that creates it.
func PodServiceAccount(acting Identity, template, field string) error {
	if template == "" || template == DefaultPodServiceAccount || template == acting.ServiceAccount {
		return nil
	}
	allowed := fmt.Sprintf("%q (the namespace's default)", DefaultPodServiceAccount)
	if !acting.Manager() {
		allowed += fmt.Sprintf(" or %q (the playbook's spec.serviceAccountName or the manager's default)", acting.ServiceAccount)
	}
	return conditions.Stalledf(ReasonServiceAccountNotAllowed,
		"%s: a step's pod may not run as ServiceAccount %q: allowed are %s", field, template, allowed)
}

// Denied turns an authorization failure of a request the manager made as
// acting (verb on resource name, e.g. "get", "secrets", "api") into the
// Stalled error that names who was refused what; any other error is returned
// unchanged. The API server refuses an impersonation itself with a Forbidden
// about serviceaccounts, told apart from a refusal of the request.
func Denied(err error, acting Identity, verb, resource, name string) error {
	if !apierrors.IsForbidden(err) {
		return err
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if d := status.Status().Details; d != nil && d.Kind == "serviceaccounts" && resource != "serviceaccounts" && !acting.Manager() {
			return conditions.Stalledf(ReasonImpersonationForbidden,
				"the manager may not act as %s of namespace %q (its ClusterRole's impersonate rule must name it); nothing is read or created as the manager instead",
				acting.ServiceAccount, acting.Namespace)
		}
	}
	what := resource
	if name != "" {
		what = fmt.Sprintf("%s %q", resource, name)
	}
	return conditions.Stalledf(ReasonAccessDenied, "%s may not %s %s in namespace %q: grant it with a Role in the namespace (see docs/security.md)",
		acting, verb, what, acting.Namespace)
}
