package identity

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/usersuccess/persona-operator/internal/conditions"
)

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy Policy
		named  string
		want   Identity
		reason string
	}{
		{"spec names one", Policy{}, "reader", Identity{"team-a", "reader"}, ""},
		{"spec wins over the default", Policy{DefaultServiceAccount: "persona-tenant"}, "reader", Identity{"team-a", "reader"}, ""},
		{"default", Policy{DefaultServiceAccount: "persona-tenant"}, "", Identity{"team-a", "persona-tenant"}, ""},
		{"default satisfies require", Policy{DefaultServiceAccount: "persona-tenant", Require: true}, "", Identity{"team-a", "persona-tenant"}, ""},
		{"neither: the manager", Policy{}, "", Identity{Namespace: "team-a"}, ""},
		{"neither, required", Policy{Require: true}, "", Identity{}, ReasonServiceAccountRequired},
		{"required, spec names one", Policy{Require: true}, "reader", Identity{"team-a", "reader"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.policy.Resolve("team-a", tc.named)
			if tc.reason != "" {
				s, ok := conditions.AsStalled(err)
				if !ok || s.Reason != tc.reason || !strings.Contains(s.Message, `"team-a"`) {
					t.Fatalf("err %v, want Stalled %s naming the namespace", err, tc.reason)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Resolve = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestUsername(t *testing.T) {
	if got := (Identity{"team-a", "reader"}).Username(); got != "system:serviceaccount:team-a:reader" {
		t.Errorf("Username = %q", got)
	}
	if got := (Identity{Namespace: "team-a"}).Username(); got != "" || !(Identity{Namespace: "team-a"}).Manager() {
		t.Errorf("the manager impersonates %q", got)
	}
}

func TestPodServiceAccount(t *testing.T) {
	tenant := Identity{"team-a", "persona-tenant"}
	manager := Identity{Namespace: "team-a"}
	for _, tc := range []struct {
		acting   Identity
		template string
		ok       bool
	}{
		{tenant, "", true},
		{tenant, "default", true},
		{tenant, "persona-tenant", true},
		{tenant, "deployer", false},
		{manager, "", true},
		{manager, "default", true},
		{manager, "deployer", false},
	} {
		err := PodServiceAccount(tc.acting, tc.template, "spec.steps[0]")
		if tc.ok != (err == nil) {
			t.Errorf("acting %+v, template %q: err %v, want ok=%v", tc.acting, tc.template, err, tc.ok)
			continue
		}
		if err != nil {
			s, ok := conditions.AsStalled(err)
			if !ok || s.Reason != ReasonServiceAccountNotAllowed || !strings.Contains(s.Message, `"deployer"`) || !strings.HasPrefix(s.Message, "spec.steps[0]") {
				t.Errorf("err %v", err)
			}
		}
	}
}

func TestDenied(t *testing.T) {
	tenant := Identity{"team-a", "reader"}
	refused := apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "db", errors.New("RBAC: not allowed"))
	impersonation := apierrors.NewForbidden(schema.GroupResource{Resource: "serviceaccounts"}, "reader", errors.New("cannot impersonate"))
	for _, tc := range []struct {
		name   string
		err    error
		acting Identity
		reason string
		says   []string
	}{
		{"refused", refused, tenant, ReasonAccessDenied, []string{`ServiceAccount "reader"`, `get secrets "db"`, `"team-a"`}},
		{"refused, the manager", refused, Identity{Namespace: "team-a"}, ReasonAccessDenied, []string{"the manager's own ServiceAccount", `get secrets "db"`}},
		{"impersonation refused", impersonation, tenant, ReasonImpersonationForbidden, []string{"may not act as reader", `"team-a"`}},
		{"wrapped", errors.Join(errors.New("creating"), refused), tenant, ReasonAccessDenied, []string{"get secrets"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := conditions.AsStalled(Denied(tc.err, tc.acting, "get", "secrets", "db"))
			if !ok || s.Reason != tc.reason {
				t.Fatalf("got %v, want Stalled %s", s, tc.reason)
			}
			for _, w := range tc.says {
				if !strings.Contains(s.Message, w) {
					t.Errorf("message %q lacks %q", s.Message, w)
				}
			}
		})
	}
	other := apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, "db")
	if got := Denied(other, tenant, "get", "secrets", "db"); got != other {
		t.Errorf("a NotFound became %v", got)
	}
}
