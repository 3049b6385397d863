package ingest_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/ingest"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
	"github.com/usersuccess/persona-operator/internal/testutil/operatortest"
)

// segmentClientVersion is the @segment/analytics-node release the test drives.
const segmentClientVersion = "3.1.0"

// segmentClient installs the official Segment Node.js client once into
// bin/segment-node (kept between runs, like the repository's other tools) and
// returns the directory whose node_modules holds it. node and npm come from
// Debian when absent. Only a machine where neither can be had skips.
func segmentClient(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		out, err := exec.Command("sh", "-c", "apt-get install -y nodejs npm || (apt-get update && apt-get install -y nodejs npm)").CombinedOutput()
		if err != nil {
			t.Skipf("node and npm are absent and could not be installed from Debian (apt-get install nodejs npm): %v\n%s", err, tail(out))
		}
	}
	dir := cluster.RepoPath("bin", "segment-node")
	marker := filepath.Join(dir, "node_modules", "@segment", "analytics-node", "package.json")
	if data, err := os.ReadFile(marker); err == nil && strings.Contains(string(data), `"version": "`+segmentClientVersion+`"`) {
		return dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "@segment/analytics-node@"+segmentClientVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("npm could not install @segment/analytics-node@%s (is the npm registry reachable?): %v\n%s", segmentClientVersion, err, tail(out))
	}
	return dir
}

func tail(b []byte) string {
	s := string(b)
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// TestSegmentNodeClient: a product instrumented with the official Segment
// Node.js client, pointed at our endpoint, makes its user a member of a
// persona built on identify traits, group traits and a windowed aggregate of
// track calls, through the whole operator on a real control plane.
func TestSegmentNodeClient(t *testing.T) {
	if !cluster.Available() {
		t.Skip("no control plane binaries (" + cluster.AssetsEnv + "): run through make test")
	}
	clientDir := segmentClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	env, op, ns, _ := eventsOperator(ctx, t, "segment_node_client", operatortest.Options{})
	c := env.Client
	const writeKey = "wk-product-analytics"
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "segment"},
		StringData: map[string]string{"writeKey": writeKey}}))
	must(t, c.Create(ctx, &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "product"},
		Spec: v1alpha1.DataSourceSpec{Type: v1alpha1.DataSourceEvents, Entity: v1alpha1.EntityUser,
			Attributes: []v1alpha1.AttributeMapping{
				{Name: "plan", Type: v1alpha1.TypeString},
				{Name: "industry", Type: v1alpha1.TypeString, Entity: v1alpha1.EntityAccount},
			},
			Events: &v1alpha1.EventsSource{
				WriteKeySecretRef: v1alpha1.SecretKeySelector{Name: "segment", Key: "writeKey"},
				Retention:         "90d",
				Aggregates: []v1alpha1.EventAggregate{
					{Name: "workflowDays", Function: v1alpha1.AggregateDistinctDays, Event: "workflow_run", Window: "14d"},
					{Name: "workflowRuns", Function: v1alpha1.AggregateCount, Event: "workflow_run", Window: "14d"},
					{Name: "lastSeen", Function: v1alpha1.AggregateLastSeen},
					{Name: "pings", Function: v1alpha1.AggregateCount, Event: "ping", Window: "1h"},
				},
			}}}))
	must(t, c.Create(ctx, &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workflow-champions"},
		Spec: v1alpha1.PersonaSpec{
			Rule: `has(user.workflowDays) && user.workflowDays >= 3 && user.plan == "pro" && account.industry == "retail"`}}))
	// The source's first (empty) load registers the write key.
	waitFor(t, "the DataSource to be Ready", func() bool {
		var ds v1alpha1.DataSource
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "product"}, &ds) == nil &&
			cluster.Condition(ds.Status.Conditions, v1alpha1.ReadyCondition) == "True/Succeeded"
	})

	script, err := filepath.Abs(filepath.Join("testdata", "segment.js"))
	if err != nil {
		t.Fatal(err)
	}
	node := exec.Command("node", script)
	node.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(clientDir, "node_modules"),
		"WRITE_KEY="+writeKey, "HOST=http://"+op.Events.Addr())
	out, err := node.CombinedOutput()
	t.Logf("segment client:\n%s", out)
	if err != nil {
		t.Fatalf("the Segment client failed: %v", err)
	}

	var p v1alpha1.Persona
	waitFor(t, "ada to be the persona's only member", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "workflow-champions"}, &p) == nil &&
			slices.Equal(p.Status.SampleMembers, []string{"ada"}) && p.Status.Members == 1
	})
	must(t, c.Create(ctx, &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pingers"},
		Spec: v1alpha1.PersonaSpec{Rule: `has(user.pings) && user.pings >= 1`}}))
	lat, _ := eventToMembership(t, ctx, c, ns, "http://"+op.Events.Addr(), writeKey, "p", 20)
	t.Logf("event → membership at 2,000 events/s, %d users: p50 %s, p99 %s, max %s (poll 25 ms)",
		len(lat), quantile(lat, 50), quantile(lat, 99), quantile(lat, 100))
}

// quantile is the q-th percentile of sorted durations, to the millisecond.
func quantile(sorted []time.Duration, q int) time.Duration {
	i := min(len(sorted)*q/100, len(sorted)-1)
	return sorted[i].Round(time.Millisecond)
}

// eventToMembership sends batches of 100 events at 2,000 events/s (a batch
// every 50 ms, each event a new user's first ping, users named prefix+n) and
// returns, sorted, per user, the time from the 200 to the user's entry in
// the pingers persona's PersonaMembership slices (polled every 25 ms), and
// when each user's 200 came.
func eventToMembership(t testing.TB, ctx context.Context, c client.Client, ns, endpoint, writeKey, prefix string,
	batches int) ([]time.Duration, map[string]time.Time) {
	const perBatch = 100
	acked := make(map[string]time.Time, batches*perBatch)
	var mu sync.Mutex
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for b := range batches {
			<-tick.C
			var sb strings.Builder
			sb.WriteString(`{"batch":[`)
			for i := range perBatch {
				if i > 0 {
					sb.WriteByte(',')
				}
				fmt.Fprintf(&sb, `{"type":"track","messageId":"%sping-%d-%d","userId":"%s%d","event":"ping"}`, prefix, b, i, prefix, b*perBatch+i)
			}
			sb.WriteString(`]}`)
			req, _ := http.NewRequest(http.MethodPost, endpoint+"/v1/batch", strings.NewReader(sb.String()))
			req.SetBasicAuth(writeKey, "")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("batch %d: %v", b, err)
				return
			}
			_ = resp.Body.Close()
			at := time.Now()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("batch %d: %d", b, resp.StatusCode)
				return
			}
			mu.Lock()
			for i := range perBatch {
				acked[fmt.Sprint(prefix, b*perBatch+i)] = at
			}
			mu.Unlock()
		}
	}()
	seen := map[string]time.Time{}
	deadline := time.Now().Add(2 * time.Minute)
	for len(seen) < batches*perBatch && time.Now().Before(deadline) {
		var list v1alpha1.PersonaMembershipList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.PersonaLabel: "pingers"}); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		for _, s := range list.Items {
			for _, m := range s.Members {
				if _, ok := seen[m.UserID]; !ok && strings.HasPrefix(m.UserID, prefix) {
					seen[m.UserID] = now
				}
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	if len(seen) != batches*perBatch {
		t.Fatalf("%d of %d users became members", len(seen), batches*perBatch)
	}
	mu.Lock()
	defer mu.Unlock()
	lat := make([]time.Duration, 0, len(seen))
	for u, at := range seen {
		lat = append(lat, max(at.Sub(acked[u]), 0))
	}
	slices.Sort(lat)
	return lat, acked
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eventsOperator starts a control plane and the whole operator on it with an
// event store in a database of its own (db), and makes a namespace; it
// returns them and the database's DSN. opts adds to the operator's options.
func eventsOperator(ctx context.Context, t testing.TB, db string, opts operatortest.Options) (*cluster.Cluster, *operatortest.Operator, string, string) {
	t.Helper()
	dsn, err := ingest.PG().CreateDatabase(ctx, db)
	must(t, err)
	env, err := cluster.Start(cluster.Options{})
	must(t, err)
	t.Cleanup(func() { _ = env.Stop() })
	opts.EventsDSN = dsn
	op, err := operatortest.Start(ctx, env, opts)
	must(t, err)
	t.Cleanup(func() { _ = op.Stop() })
	ns, err := env.Namespace(ctx, "events-")
	must(t, err)
	return env, op, ns, dsn
}
