// Package querytest gives envtest suites real identities for the query
// endpoint: ServiceAccount tokens from the TokenRequest API, RoleBindings
// (waited for until RBAC enforces them), the repository's ClusterRoles, and
// kubeconfig files, as a user of `kubectl persona` would have them.
package querytest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// settle bounds how long RBAC and token caches of the API server may take.
const settle = 30 * time.Second

// ServiceAccountToken creates a ServiceAccount and returns a token for it,
// once the API server authenticates it: a token checked too early would be
// remembered as invalid by the endpoint's cache.
func ServiceAccountToken(ctx context.Context, cs kubernetes.Interface, ns, name string) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	exp := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	token := tr.Status.Token
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, settle, true, func(ctx context.Context) (bool, error) {
		r, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		return err == nil && r.Status.Authenticated, nil
	})
	if err != nil {
		return "", fmt.Errorf("the token of %s/%s is not accepted: %w", ns, name, err)
	}
	return token, nil
}

// Bind grants a ServiceAccount a ClusterRole in a namespace and waits until
// RBAC allows it get on personas/<probe> (or on personas, probe ""), so
// the endpoint's first SubjectAccessReview sees the binding.
func Bind(ctx context.Context, cs kubernetes.Interface, ns, sa, role, probe string) error {
	return BindAllowing(ctx, cs, ns, sa, role, authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get",
		Group: v1alpha1.GroupVersion.Group, Resource: "personas", Subresource: probe})
}

// BindAllowing grants a ServiceAccount a ClusterRole in a namespace and waits
// until RBAC allows it probe.
func BindAllowing(ctx context.Context, cs kubernetes.Interface, ns, sa, role string, probe authorizationv1.ResourceAttributes) error {
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: sa + "-", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}}}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		return err
	}
	user := "system:serviceaccount:" + ns + ":" + sa
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, settle, true, func(ctx context.Context) (bool, error) {
		r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: []string{"system:serviceaccounts"},
				ResourceAttributes: &probe}}, metav1.CreateOptions{})
		return err == nil && r.Status.Allowed, nil
	})
}

// ClusterRole creates a ClusterRole unless one of that name exists.
func ClusterRole(ctx context.Context, cs kubernetes.Interface, r *rbacv1.ClusterRole) error {
	_, err := cs.RbacV1().ClusterRoles().Create(ctx, r, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// RepoClusterRole reads a ClusterRole manifest of the repository (the one the
// docs tell people to bind) and creates it; it returns its name.
func RepoClusterRole(ctx context.Context, cs kubernetes.Interface, path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var r rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return r.Name, ClusterRole(ctx, cs, &r)
}

// Kubeconfig writes a kubeconfig for the API server of cfg, authenticating
// with token (empty: with cfg's client certificate, as envtest's admin), and
// returns its path.
func Kubeconfig(dir, name string, cfg *rest.Config, token, namespace string) (string, error) {
	user := &clientcmdapi.AuthInfo{Token: token}
	if token == "" {
		user = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[name] = user
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: name, Namespace: namespace}
	kc.CurrentContext = name
	path := filepath.Join(dir, name+".kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}
