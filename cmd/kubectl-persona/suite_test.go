package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/query"
	"github.com/usersuccess/persona-operator/internal/query/querytest"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
	"github.com/usersuccess/persona-operator/internal/testutil/operatortest"
)

// The end-to-end suite runs the plugin's commands in-process against a real
// kube-apiserver (envtest) and a manager running the real DataSource, Persona
// and Playbook controllers plus the query endpoint over loopback TLS. The
// profiles come from Inline DataSources through the DataSource controller,
// exactly as in a cluster.
var (
	suite struct {
		cfg      *rest.Config
		k8s      client.Client
		cs       *kubernetes.Clientset
		server   *query.Server
		startErr error

		once     sync.Once
		setupErr error
		ns       string
		dir      string
		analyst  string // kubeconfig of a ServiceAccount bound to the query reader role
		outsider string // kubeconfig of a ServiceAccount without any binding
		admin    string // kubeconfig of envtest's admin: a client certificate, no token
		caFile   string // the endpoint's self-signed certificate
		endpoint string
	}
)

func TestMain(m *testing.M) {
	if !cluster.Available() {
		fmt.Println("KUBEBUILDER_ASSETS is not set: the end-to-end tests are skipped (make test sets it)")
		os.Exit(m.Run())
	}
	c, err := cluster.Start(cluster.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	suite.cfg, suite.k8s, suite.cs = c.Config, c.Client, c.Clientset
	ctx, cancel := context.WithCancel(context.Background())
	op, err := operatortest.Start(ctx, c, operatortest.Options{Query: true})
	if err != nil {
		suite.startErr = err
	} else {
		suite.server = op.Query
	}
	code := m.Run()
	cancel()
	_ = c.Stop()
	if suite.dir != "" {
		_ = os.RemoveAll(suite.dir)
	}
	os.Exit(code)
}

// fixtureYAML is the namespace's data: accounts renewing in 30 and 200 days,
// six users, feature requests; the at-risk persona; three playbooks.
const fixtureYAML = `
apiVersion: personas.usersuccess.io/v1alpha1
kind: DataSource
metadata: {name: crm-accounts}
spec:
  type: Inline
  entity: Account
  key: {accountId: account_id}
  inline:
    format: CSV
    data: |
      account_id,tier,arr,renewal_date
      acme,enterprise,250000,{{.Soon}}
      globex,enterprise,90000,{{.Later}}
      initech,smb,0,{{.Soon}}
  attributes:
  - {name: tier, type: String}
  - {name: arr, type: Double}
  - {name: renewalDate, type: Timestamp, from: renewal_date}
---
apiVersion: personas.usersuccess.io/v1alpha1
kind: DataSource
metadata: {name: product-users}
spec:
  type: Inline
  entity: User
  key: {userId: id, accountId: account_id}
  inline:
    format: NDJSON
    data: |
      {"id":"u-01","account_id":"acme","role":"decision_maker","nps":4}
      {"id":"u-02","account_id":"acme","role":"champion","nps":9}
      {"id":"u-03","account_id":"acme","role":"decision_maker"}
      {"id":"u-04","account_id":"globex","role":"decision_maker","nps":2}
      {"id":"u-05","account_id":"initech","role":"decision_maker","nps":3}
      {"id":"u-06","account_id":"acme","role":"decision_maker","nps":6}
  attributes:
  - {name: role, type: String}
  - {name: nps, type: Int}
---
apiVersion: personas.usersuccess.io/v1alpha1
kind: DataSource
metadata: {name: feature-requests}
spec:
  type: Inline
  entity: Signal
  key: {userId: user_id}
  signal: {attribute: featureRequests, valueAttribute: feature}
  inline:
    format: CSV
    data: |
      user_id,feature
      u-01,audit_log
      u-01,sso
      u-06,audit_log
  attributes:
  - {name: feature, type: String}
---
apiVersion: personas.usersuccess.io/v1alpha1
kind: Playbook
metadata: {name: csm-outreach}
spec:
  personaRef: {name: at-risk}
  trigger: Enter
  steps:
  - name: call
    jobTemplate:
      spec:
        template:
          spec:
            restartPolicy: Never
            containers: [{name: call, image: busybox:1.36, command: ["true"]}]
---
apiVersion: personas.usersuccess.io/v1alpha1
kind: Playbook
metadata: {name: renewal-exit-survey}
spec:
  stage: retention
  trigger: Exit
  steps:
  - name: survey
    jobTemplate:
      spec:
        template:
          spec:
            restartPolicy: Never
            containers: [{name: survey, image: busybox:1.36, command: ["true"]}]
---
apiVersion: personas.usersuccess.io/v1alpha1
kind: Playbook
metadata: {name: trial-nudge}
spec:
  stage: trial
  steps:
  - name: nudge
    jobTemplate:
      spec:
        template:
          spec:
            restartPolicy: Never
            containers: [{name: nudge, image: busybox:1.36, command: ["true"]}]
`

// atRiskYAML is the live persona.
const atRiskYAML = `apiVersion: personas.usersuccess.io/v1alpha1
kind: Persona
metadata:
  name: at-risk
spec:
  stage: retention
  rule: >-
    account.tier == "enterprise"
    && account.renewalDate - now <= duration("2160h")
    && user.role == "decision_maker"
    && has(user.nps) && user.nps <= 6
  insights:
  - name: top-feature-requests
    type: TopValues
    expression: 'has(user.featureRequests) ? user.featureRequests : []'
  - name: arr-at-risk
    type: Sum
    expression: account.arr
`

// setup creates the fixture once and waits until the controllers are done
// with it: two members, their runs in the playbooks' ledgers.
func setup(t *testing.T) {
	t.Helper()
	if !cluster.Available() {
		t.Skip("needs KUBEBUILDER_ASSETS (a control plane)")
	}
	if suite.startErr != nil {
		t.Fatal(suite.startErr)
	}
	suite.once.Do(func() { suite.setupErr = createFixture() })
	if suite.setupErr != nil {
		t.Fatal(suite.setupErr)
	}
}

func createFixture() error {
	ctx := context.Background()
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cs-"}}
	if err := suite.k8s.Create(ctx, nsObj); err != nil {
		return err
	}
	suite.ns = nsObj.Name
	now := time.Now().UTC()
	var buf bytes.Buffer
	if err := template.Must(template.New("fixture").Parse(fixtureYAML)).Execute(&buf, map[string]string{
		"Soon": now.Add(30 * 24 * time.Hour).Format(time.RFC3339), "Later": now.Add(200 * 24 * time.Hour).Format(time.RFC3339),
	}); err != nil {
		return err
	}
	// Playbooks before the persona: its first members are entries they act on.
	for _, doc := range append(strings.Split(buf.String(), "\n---\n"), atRiskYAML) {
		obj, err := decode(doc)
		if err != nil {
			return err
		}
		obj.SetNamespace(suite.ns)
		if err := suite.k8s.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %s: %w", obj.GetName(), err)
		}
	}
	if err := waitForControllers(ctx); err != nil {
		return err
	}
	return identities(ctx)
}

func decode(doc string) (client.Object, error) {
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
		return nil, err
	}
	var obj client.Object
	switch meta.Kind {
	case "DataSource":
		obj = &v1alpha1.DataSource{}
	case "Persona":
		obj = &v1alpha1.Persona{}
	case "Playbook":
		obj = &v1alpha1.Playbook{}
	default:
		return nil, fmt.Errorf("unexpected kind %q", meta.Kind)
	}
	return obj, yaml.UnmarshalStrict([]byte(doc), obj)
}

// waitForControllers waits for the persona's two members and for both
// playbooks to have recorded them (csm-outreach's runs, the survey's armed
// entries), so previews see a settled ledger.
func waitForControllers(ctx context.Context) error {
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var p v1alpha1.Persona
		if err := suite.k8s.Get(ctx, types.NamespacedName{Namespace: suite.ns, Name: "at-risk"}, &p); err != nil {
			return false, nil
		}
		if p.Status.Members != 2 || len(p.Status.Insights) != 2 {
			return false, nil
		}
		return runs(ctx, "csm-outreach") == 2 && runs(ctx, "renewal-exit-survey") == 2, nil
	})
}

func runs(ctx context.Context, playbook string) int {
	var list v1alpha1.PlaybookProgressList
	if err := suite.k8s.List(ctx, &list, client.InNamespace(suite.ns), client.MatchingLabels{v1alpha1.PlaybookLabel: playbook}); err != nil {
		return -1
	}
	n := 0
	for _, s := range list.Items {
		n += len(s.Runs)
	}
	return n
}

// identities makes the kubeconfigs of the three callers and the CA file.
func identities(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "kubectl-persona-e2e-")
	if err != nil {
		return err
	}
	suite.dir = dir
	role, err := querytest.RepoClusterRole(ctx, suite.cs, cluster.RepoPath("config", "rbac", "query_reader_role.yaml"))
	if err != nil {
		return err
	}
	analyst, err := querytest.ServiceAccountToken(ctx, suite.cs, suite.ns, "analyst")
	if err != nil {
		return err
	}
	if err := querytest.Bind(ctx, suite.cs, suite.ns, "analyst", role, query.SubresourcePreview); err != nil {
		return err
	}
	outsider, err := querytest.ServiceAccountToken(ctx, suite.cs, suite.ns, "outsider")
	if err != nil {
		return err
	}
	if suite.analyst, err = querytest.Kubeconfig(dir, "analyst", suite.cfg, analyst, suite.ns); err != nil {
		return err
	}
	if suite.outsider, err = querytest.Kubeconfig(dir, "outsider", suite.cfg, outsider, suite.ns); err != nil {
		return err
	}
	if suite.admin, err = querytest.Kubeconfig(dir, "admin", suite.cfg, "", suite.ns); err != nil {
		return err
	}
	suite.caFile = filepath.Join(dir, "endpoint-ca.crt")
	suite.endpoint = "https://" + suite.server.Address()
	return os.WriteFile(suite.caFile, suite.server.CertificatePEM(), 0o600)
}

// result is one run of the plugin.
type result struct {
	stdout, stderr string
	code           int
}

// kubectlPersona runs the plugin in-process as the given caller (a
// kubeconfig), against the suite's endpoint, trusting its certificate.
func kubectlPersona(t *testing.T, kubeconfig string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	full := append([]string{"--kubeconfig", kubeconfig, "--endpoint", suite.endpoint, "--endpoint-certificate-authority", suite.caFile}, args...)
	code := run(full, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	r := result{stdout: out.String(), stderr: errOut.String(), code: code}
	t.Logf("$ kubectl persona %s\n%s%s(exit %d)", strings.Join(args, " "), r.stdout, r.stderr, r.code)
	return r
}

// writeFile writes a test manifest and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func streams(out, errOut *strings.Builder) genericiooptions.IOStreams {
	return genericiooptions.IOStreams{In: strings.NewReader(""), Out: out, ErrOut: errOut}
}
