package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/queryapi"
)

// bindNamed grants sa a ClusterRole in ns and waits until RBAC allows get on
// personas/<sub> named name (querytest.Bind probes without a name, which a
// grant limited by resourceNames never allows).
func bindNamed(t *testing.T, ns, sa, role, sub, name string) {
	t.Helper()
	ctx := context.Background()
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: sa + "-", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}}}
	if _, err := clientset.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	user := "system:serviceaccount:" + ns + ":" + sa
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		r, err := clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: []string{"system:serviceaccounts"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Name: name,
					Group: v1alpha1.GroupVersion.Group, Resource: "personas", Subresource: sub}}}, metav1.CreateOptions{})
		return err == nil && r.Status.Allowed, nil
	})
	if err != nil {
		t.Fatalf("RBAC never allowed %s get personas/%s %s: %v", user, sub, name, err)
	}
}

// TestGrantsLimitedByResourceNames: an explain grant limited to one persona
// allows that persona only; a preview grant limited to one persona allows no
// preview at all, since a preview's rule is the caller's (with the name alone
// checked, it would let the caller evaluate any rule over every profile).
func TestGrantsLimitedByResourceNames(t *testing.T) {
	envtestOnly(t)
	ns := namespaceWithData(t)
	group := []string{v1alpha1.GroupVersion.Group}
	clusterRole(t, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "explain-detractors-only"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: group, Resources: []string{"personas/explain"}, ResourceNames: []string{"detractors"}, Verbs: []string{"get"}}}})
	clusterRole(t, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "preview-detractors-only"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: group, Resources: []string{"personas/preview"}, ResourceNames: []string{"detractors"}, Verbs: []string{"get"}}}})

	explainer := token(t, ns, "named-explainer")
	bindNamed(t, ns, "named-explainer", "explain-detractors-only", SubresourceExplain, "detractors")
	previewer := token(t, ns, "named-previewer")
	bindNamed(t, ns, "named-previewer", "preview-detractors-only", SubresourcePreview, "detractors")
	// Any rule at all, under the granted name.
	anyRule := v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: `user.id.startsWith("u")`}}

	tests := []struct {
		name, method, path, token string
		body                      any
		code                      int
		messageSubstr             string
	}{
		{"explain of the granted persona", http.MethodGet, explainURL(ns), explainer, nil, 200, ""},
		{"explain of another persona", http.MethodGet, fmt.Sprintf(queryapi.ExplainPath, ns, "promoters") + "?user=u1", explainer, nil, 403,
			`cannot get resource "personas/explain"`},
		{"preview under the granted name", http.MethodPost, previewURL(ns), previewer, anyRule, 403, "limited by resourceNames"},
		{"preview under another name", http.MethodPost, fmt.Sprintf(queryapi.PreviewPath, ns, "promoters"), previewer, anyRule, 403,
			`cannot get resource "personas/preview"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call(t, tt.method, tt.path, tt.token, tt.body)
			if code != tt.code {
				t.Fatalf("code %d (%s), want %d", code, body, tt.code)
			}
			if code == 200 {
				return
			}
			var st metav1.Status
			if err := json.Unmarshal(body, &st); err != nil || st.Reason != metav1.StatusReasonForbidden || !strings.Contains(st.Message, tt.messageSubstr) {
				t.Errorf("status %s, want Forbidden containing %q", body, tt.messageSubstr)
			}
		})
	}
}
