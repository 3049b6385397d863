package query

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/query/querytest"
	"github.com/usersuccess/persona-operator/internal/queryapi"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
	"github.com/usersuccess/persona-operator/internal/testutil/profiletest"
)

// The envtest suite checks the endpoint against a real kube-apiserver
// (internal/testutil/cluster): tokens of real ServiceAccounts (TokenRequest),
// real RBAC, real TokenReview and SubjectAccessReview.
var (
	k8s       client.Client
	clientset *kubernetes.Clientset
	server    *Server
	suiteErr  error
)

func TestMain(m *testing.M) {
	if !cluster.Available() {
		fmt.Println("KUBEBUILDER_ASSETS is not set: the envtest specs are skipped (make test sets it)")
		os.Exit(m.Run())
	}
	c, err := cluster.Start(cluster.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	suiteErr = startSuite(ctx, c)
	code := m.Run()
	cancel()
	_ = c.Stop()
	os.Exit(code)
}

// startSuite runs a manager with only the query endpoint; its store is filled
// directly (the plugin's suite fills it through the real controllers).
func startSuite(ctx context.Context, c *cluster.Cluster) error {
	k8s, clientset = c.Client, c.Clientset
	mgr, err := c.NewManager()
	if err != nil {
		return err
	}
	if server, err = Setup(mgr, suiteStore, Options{BindAddress: "127.0.0.1:0"}); err != nil {
		return err
	}
	cluster.Run(ctx, mgr)
	select {
	case <-server.Listening():
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("the query endpoint did not start")
	}
}

var suiteStore = profile.NewStore()

func envtestOnly(t *testing.T) {
	t.Helper()
	if !cluster.Available() {
		t.Skip("needs KUBEBUILDER_ASSETS (a control plane)")
	}
	if suiteErr != nil {
		t.Fatal(suiteErr)
	}
}

// namespaceWithData creates a namespace holding DataSources users and
// accounts (loaded into the store) and a Persona "detractors".
func namespaceWithData(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "query-"}}
	if err := k8s.Create(ctx, nsObj); err != nil {
		t.Fatal(err)
	}
	ns := nsObj.Name
	inline := &v1alpha1.InlineSource{Format: v1alpha1.FormatCSV, Data: "id\nx\n"}
	for _, name := range []string{"users", "accounts"} {
		ds := &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.DataSourceSpec{
			Type: v1alpha1.DataSourceInline, Entity: v1alpha1.EntityUser, Key: v1alpha1.RecordKey{UserID: "id"}, Inline: inline,
			Attributes: []v1alpha1.AttributeMapping{{Name: "x", Type: v1alpha1.TypeString}}}}
		if err := k8s.Create(ctx, ds); err != nil {
			t.Fatal(err)
		}
	}
	if err := k8s.Create(ctx, &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Name: "detractors", Namespace: ns},
		Spec: v1alpha1.PersonaSpec{Rule: "has(user.nps) && user.nps <= 6"}}); err != nil {
		t.Fatal(err)
	}
	n := suiteStore.Namespace(ns)
	n.Apply(profiletest.SourceData(t, "users", usersSpec, map[string]any{"id": "u1", "account": "acme", "nps": "3"}))
	n.Apply(profiletest.SourceData(t, "accounts", accountsSpec, map[string]any{"account": "acme", "tier": "enterprise"}))
	return ns
}

// token creates a ServiceAccount and returns its TokenRequest token.
func token(t *testing.T, ns, name string) string {
	t.Helper()
	tok, err := querytest.ServiceAccountToken(context.Background(), clientset, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// bind grants a ServiceAccount a ClusterRole in a namespace, waiting until
// RBAC allows get on personas/probe.
func bind(t *testing.T, ns, sa, role, probe string) {
	t.Helper()
	if err := querytest.Bind(context.Background(), clientset, ns, sa, role, probe); err != nil {
		t.Fatal(err)
	}
}

func clusterRole(t *testing.T, r *rbacv1.ClusterRole) {
	t.Helper()
	if err := querytest.ClusterRole(context.Background(), clientset, r); err != nil {
		t.Fatal(err)
	}
}

// call sends a request to the running endpoint, trusting its self-signed
// certificate, and returns the code and body.
func call(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(server.CertificatePEM()) {
		t.Fatal("the endpoint has no self-signed certificate")
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, "https://"+server.Address()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func explainURL(ns string) string {
	return fmt.Sprintf(queryapi.ExplainPath, ns, "detractors") + "?user=u1"
}

func previewURL(ns string) string { return fmt.Sprintf(queryapi.PreviewPath, ns, "detractors") }

var previewBody = v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: "user.nps <= 6"}}

func TestEndpointAuthenticatesAndAuthorizesWithTheAPIServer(t *testing.T) {
	envtestOnly(t)
	ns := namespaceWithData(t)
	other := namespaceWithData(t)
	reader, err := querytest.RepoClusterRole(context.Background(), clientset, cluster.RepoPath("config", "rbac", "query_reader_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	clusterRole(t, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "plain-persona-reader"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"personas", "personamemberships"}, Verbs: []string{"get", "list", "watch"}}}})
	clusterRole(t, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "explain-only"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"personas/explain"}, Verbs: []string{"get"}}}})

	analyst := token(t, ns, "analyst")
	bind(t, ns, "analyst", reader, SubresourcePreview)
	unbound := token(t, ns, "unbound")
	viewer := token(t, ns, "viewer")
	bind(t, ns, "viewer", "plain-persona-reader", "")
	explainer := token(t, ns, "explainer")
	bind(t, ns, "explainer", "explain-only", SubresourceExplain)
	elsewhere := token(t, other, "analyst")
	bind(t, other, "analyst", reader, SubresourceExplain)

	tests := []struct {
		name          string
		method, path  string
		token         string
		body          any
		code          int
		reason        metav1.StatusReason
		messageSubstr string
	}{
		{"no token", http.MethodGet, explainURL(ns), "", nil, 401, metav1.StatusReasonUnauthorized, "bearer token is required"},
		{"a token the API server does not know", http.MethodGet, explainURL(ns), "not-a-real-token", nil, 401, metav1.StatusReasonUnauthorized, "not valid"},
		{"a ServiceAccount without any RoleBinding", http.MethodGet, explainURL(ns), unbound, nil, 403, metav1.StatusReasonForbidden,
			fmt.Sprintf(`User "system:serviceaccount:%s:unbound" cannot get resource "personas/explain"`, ns)},
		{"get personas alone does not reveal profiles", http.MethodGet, explainURL(ns), viewer, nil, 403, metav1.StatusReasonForbidden, "personas/explain"},
		{"get personas alone does not preview", http.MethodPost, previewURL(ns), viewer, previewBody, 403, metav1.StatusReasonForbidden, "personas/preview"},
		{"personas/explain granted: explain", http.MethodGet, explainURL(ns), explainer, nil, 200, "", ""},
		{"personas/explain granted: no preview", http.MethodPost, previewURL(ns), explainer, previewBody, 403, metav1.StatusReasonForbidden, "personas/preview"},
		{"the query reader role: explain", http.MethodGet, explainURL(ns), analyst, nil, 200, "", ""},
		{"the query reader role: preview", http.MethodPost, previewURL(ns), analyst, previewBody, 200, "", ""},
		{"a binding in another namespace grants nothing here", http.MethodGet, explainURL(ns), elsewhere, nil, 403, metav1.StatusReasonForbidden, "in the namespace"},
		{"and it grants its own namespace", http.MethodGet, explainURL(other), elsewhere, nil, 200, "", ""},
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
			if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" {
				t.Fatalf("error body %q is not a Status: %v", body, err)
			}
			if st.Reason != tt.reason || !strings.Contains(st.Message, tt.messageSubstr) {
				t.Errorf("status %+v, want reason %s, message containing %q", st, tt.reason, tt.messageSubstr)
			}
		})
	}

	// What the allowed caller got is the real answer.
	code, body := call(t, http.MethodGet, explainURL(ns), analyst, nil)
	var e queryapi.Explain
	if err := json.Unmarshal(body, &e); code != 200 || err != nil || !e.Match || e.Account != "acme" {
		t.Errorf("explain: %d %s", code, body)
	}
}

func TestEndpointOnlyServesTLS(t *testing.T) {
	envtestOnly(t)
	resp, err := http.Get("http://" + server.Address() + "/v1/namespaces/x/personas/y/explain")
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP was answered with 200")
		}
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}
	resp, err = c.Get("https://" + server.Address() + "/")
	if err == nil {
		_ = resp.Body.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client that does not trust the self-signed certificate connected: %v", err)
	}
}
