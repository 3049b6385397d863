//go:build e2e

// Package e2e runs the operator as a process against the local control plane
// of hack/localcluster.sh, where kube-controller-manager and kwok really run
// Jobs to completion. `make test-e2e` brings the cluster up, builds the manager
// and runs this package.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/playbook"
)

const users = 1000

var (
	root   = filepath.Join("..", "..")
	state  = envOr("LOCALCLUSTER_DIR", filepath.Join(root, ".localcluster"))
	scheme = runtime.NewScheme()
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func restConfig(t *testing.T, kubeconfig string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("local cluster not up? run `make test-e2e` (%v)", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg
}

// setup installs the CRDs and binds the operator's ClusterRole to the identity
// in manager.kubeconfig, so the manager runs with exactly config/rbac's grants.
func setup(t *testing.T, cfg *rest.Config, c client.Client) {
	t.Helper()
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{filepath.Join(root, "config", "crd", "bases")}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(b, &role); err != nil {
		t.Fatal(err)
	}
	role.Name = "persona-e2e-manager"
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "persona-e2e-manager"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName,
			Name: "system:serviceaccount:persona-system:persona-controller-manager"}},
	}
	for _, o := range []client.Object{&role, binding} {
		if err := c.Create(context.Background(), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// scenario is one namespace: users in a DataSource, a persona of all of them,
// and a one-step playbook created before the manager evaluates the persona.
// tenant creates the identity the manager acts as in a namespace
// (config/samples/tenant_serviceaccount.yaml; the manager runs with
// --default-service-account=persona-tenant): its ClusterRole may not create
// Jobs or read Secrets itself.
func tenant(t *testing.T, c client.Client, ns string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "config", "samples", "tenant_serviceaccount.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if len(u.Object) == 0 {
			continue
		}
		u.SetNamespace(ns)
		if err := c.Create(context.Background(), &u); err != nil {
			t.Fatal(err)
		}
	}
}

func scenario(t *testing.T, c client.Client, name string, ttl *int32) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	// Pods are refused until the namespace's default ServiceAccount exists.
	waitFor(t, time.Minute, "default ServiceAccount", func() bool {
		return c.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: "default"}, &corev1.ServiceAccount{}) == nil
	})
	tenant(t, c, ns.Name)
	var csv strings.Builder
	csv.WriteString("id,account,cohort\n")
	for i := 0; i < users; i++ {
		fmt.Fprintf(&csv, "user-%04d,acct-%03d,e2e\n", i, i%100)
	}
	objs := []client.Object{
		&v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "users"}, Spec: v1alpha1.DataSourceSpec{
			Type: v1alpha1.DataSourceInline, Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
			Inline:     &v1alpha1.InlineSource{Format: v1alpha1.FormatCSV, Data: csv.String()},
			Attributes: []v1alpha1.AttributeMapping{{Name: "cohort", Type: v1alpha1.TypeString}},
		}},
		&v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "cohort"},
			Spec: v1alpha1.PersonaSpec{Rule: `user.cohort == "e2e"`}},
		&v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "welcome"}, Spec: v1alpha1.PlaybookSpec{
			PersonaRef: &v1alpha1.LocalObjectReference{Name: "cohort"}, MaxConcurrentJobs: 2000, MaxLaunchesPerMinute: 100000, UsersPerJob: 1,
			Steps: []v1alpha1.PlaybookStep{{Name: "welcome", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				BackoffLimit: ptr(int32(0)), TTLSecondsAfterFinished: ttl,
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "welcome", Image: "busybox"}}}},
			}}}},
		}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	return ns.Name
}

func ptr[T any](v T) *T { return &v }

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// jobLog watches a namespace's Jobs from before anything is created and
// records every Job that ever existed, so Jobs deleted by their TTL still count.
// The API server may end a watch at any time (timeouts, load): it is resumed
// from the last resourceVersion seen, so no event is lost in between; a
// resourceVersion that has become too old fails the test rather than let it
// count from a gap.
type jobLog struct {
	mu       sync.Mutex
	created  map[string]string // Job name → user
	resumed  int
	watchErr error
	// firstAt and lastAt are when the watch delivered the first and the last
	// new Job: millisecond timing, where creationTimestamps have whole seconds.
	firstAt, lastAt time.Time
}

func watchJobs(t *testing.T, c client.WithWatch, ns string) *jobLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var list batchv1.JobList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	l := &jobLog{created: map[string]string{}}
	for _, j := range list.Items {
		l.created[j.Name] = j.Annotations[playbook.UserAnnotation]
	}
	go l.follow(ctx, c, ns, list.ResourceVersion)
	return l
}

// follow watches from rv until ctx ends, resuming each time the server closes
// the watch.
func (l *jobLog) follow(ctx context.Context, c client.WithWatch, ns, rv string) {
	for ctx.Err() == nil {
		w, err := c.Watch(ctx, &batchv1.JobList{}, client.InNamespace(ns),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
		if err != nil {
			if ctx.Err() == nil {
				l.fail(fmt.Errorf("watching Jobs from resourceVersion %s: %w", rv, err))
			}
			return
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				l.fail(fmt.Errorf("the Job watch failed at resourceVersion %s: %w", rv, apierrors.FromObject(ev.Object)))
				w.Stop()
				return
			}
			j, ok := ev.Object.(*batchv1.Job)
			if !ok {
				continue
			}
			rv = j.ResourceVersion
			if ev.Type != watch.Added {
				continue
			}
			l.mu.Lock()
			if _, seen := l.created[j.Name]; !seen {
				l.created[j.Name] = j.Annotations[playbook.UserAnnotation]
				l.lastAt = time.Now()
				if l.firstAt.IsZero() {
					l.firstAt = l.lastAt
				}
			}
			l.mu.Unlock()
		}
		w.Stop()
		l.mu.Lock()
		l.resumed++
		l.mu.Unlock()
	}
}

func (l *jobLog) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watchErr = err
}

// seen is how many Jobs the log holds, failing the test if the watch broke.
func (l *jobLog) seen(t *testing.T) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.watchErr != nil {
		t.Fatal(l.watchErr)
	}
	return len(l.created)
}

// perUser counts Jobs per user.
func (l *jobLog) perUser() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, u := range l.created {
		out[u]++
	}
	return out
}

// manager is the operator process.
type manager struct {
	cmd         *exec.Cmd
	metricsAddr string
}

func startManager(t *testing.T, extra ...string) *manager {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logf, err := os.OpenFile(filepath.Join(state, "logs", "e2e-manager.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--enable-webhooks=false", "--leader-elect=false",
		"--metrics-bind-address=" + addr, "--metrics-secure=false", "--health-probe-bind-address=127.0.0.1:0",
		"--kube-api-qps=300", "--kube-api-burst=600", "--query-bind-address=0",
		"--default-service-account=persona-tenant"}, extra...)
	cmd := exec.Command(filepath.Join(root, "bin", "manager"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(state, "manager.kubeconfig"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &manager{cmd: cmd, metricsAddr: addr}
	t.Cleanup(func() { m.kill() })
	return m
}

func (m *manager) kill() {
	if m.cmd.ProcessState == nil {
		_ = m.cmd.Process.Signal(syscall.SIGKILL)
		_ = m.cmd.Wait()
	}
}

// writes sums the manager's mutating API requests from client-go's metrics.
func (m *manager) writes(t *testing.T) int {
	t.Helper()
	resp, err := http.Get("http://" + m.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		for _, verb := range []string{`method="POST"`, `method="PUT"`, `method="PATCH"`, `method="DELETE"`} {
			if strings.Contains(line, verb) {
				f := strings.Fields(line)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				total += v
			}
		}
	}
	return int(total)
}

func playbookStatus(t *testing.T, c client.Client, ns string) v1alpha1.PlaybookStatus {
	t.Helper()
	var pb v1alpha1.Playbook
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "welcome"}, &pb); err != nil {
		t.Fatal(err)
	}
	return pb.Status
}

func checkOnePerUser(t *testing.T, l *jobLog) {
	t.Helper()
	per := l.perUser()
	if len(per) != users {
		t.Errorf("%d users got a Job, want %d", len(per), users)
	}
	for u, n := range per {
		if n != 1 {
			t.Errorf("user %s got %d Jobs", u, n)
		}
	}
}

func TestPlaybookLaunchesOncePerUser(t *testing.T) {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cfg := restConfig(t, filepath.Join(state, "admin.kubeconfig"))
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	setup(t, cfg, c)

	t.Run("throughput: 1000 users enter, 1000 Jobs complete", func(t *testing.T) {
		ns := scenario(t, c, "e2e-rate", nil)
		// A namespace the manager is not told to serve (--namespaces): nothing
		// in it may be reconciled.
		other := scenario(t, c, "e2e-other", nil)
		jobs := watchJobs(t, c, ns)
		m := startManager(t, "--namespaces="+ns)
		start := time.Now()
		waitFor(t, 5*time.Minute, "1000 succeeded runs", func() bool { return playbookStatus(t, c, ns).Succeeded == users })
		done := time.Since(start)
		writes := m.writes(t)
		m.kill()
		// The watch may lag behind a busy API server: let it catch up.
		waitFor(t, time.Minute, "the Job watch to see every Job", func() bool { return jobs.seen(t) >= users })
		checkOnePerUser(t, jobs)
		var ds v1alpha1.DataSource
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: other, Name: "users"}, &ds); err != nil {
			t.Fatal(err)
		}
		var otherJobs batchv1.JobList
		if err := c.List(context.Background(), &otherJobs, client.InNamespace(other)); err != nil {
			t.Fatal(err)
		}
		if ds.Status.ObservedGeneration != 0 || len(ds.Status.Conditions) > 0 || len(otherJobs.Items) > 0 {
			t.Errorf("namespace %s is outside --namespaces but was reconciled: DataSource status %+v, %d Jobs", other, ds.Status, len(otherJobs.Items))
		}
		var list batchv1.JobList
		if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		first, last := list.Items[0].CreationTimestamp.Time, list.Items[0].CreationTimestamp.Time
		for _, j := range list.Items {
			if ts := j.CreationTimestamp.Time; ts.Before(first) {
				first = ts
			} else if ts.After(last) {
				last = ts
			}
		}
		// creationTimestamp has whole seconds: count the last second in full, a lower bound.
		span := last.Sub(first) + time.Second
		jobs.mu.Lock()
		watched := jobs.lastAt.Sub(jobs.firstAt)
		jobs.mu.Unlock()
		t.Logf("RESULT launch: %d Jobs created within %.0fs by their creationTimestamps (>= %.0f Jobs/s); "+
			"the watch saw the first and the last %.2fs apart (%.0f Jobs/s); all succeeded %.1fs after manager start",
			len(list.Items), span.Seconds(), float64(len(list.Items))/span.Seconds(),
			watched.Seconds(), float64(len(list.Items)-1)/watched.Seconds(), done.Seconds())
		t.Logf("RESULT writes: %d mutating API requests by the manager for %d users (%.2f per user), DataSource and Persona work included",
			writes, users, float64(writes)/users)
	})

	t.Run("exactly once: SIGKILL the manager repeatedly while 1000 users enter; Jobs are TTL-deleted", func(t *testing.T) {
		ns := scenario(t, c, "e2e-kill", ptr(int32(2)))
		jobs := watchJobs(t, c, ns)
		kills := 0
		for kills < 5 {
			m := startManager(t)
			time.Sleep(time.Duration(1500+kills*700) * time.Millisecond)
			m.kill()
			kills++
		}
		m := startManager(t)
		waitFor(t, 5*time.Minute, "1000 succeeded runs", func() bool { return playbookStatus(t, c, ns).Succeeded == users })
		// TTL deletion goes on; the finalizer keeps each Job until recorded, then
		// lets it go. Wait for all to be gone and make sure none comes back.
		waitFor(t, 3*time.Minute, "TTL-deleted Jobs released", func() bool {
			var list batchv1.JobList
			return c.List(context.Background(), &list, client.InNamespace(ns)) == nil && len(list.Items) == 0
		})
		time.Sleep(3 * time.Second)
		m.kill()
		waitFor(t, time.Minute, "the Job watch to see every Job", func() bool { return jobs.seen(t) >= users })
		checkOnePerUser(t, jobs)
		st := playbookStatus(t, c, ns)
		if st.Succeeded != users || st.Failed != 0 || st.Running != 0 || st.Pending != 0 {
			t.Errorf("status %+v, want %d succeeded and nothing else", st, users)
		}
		t.Logf("RESULT exactly-once: %d SIGKILLs, %d Jobs for %d users, every one succeeded and was TTL-deleted, none re-created (Job watch resumed %d times)",
			kills, jobs.seen(t), users, jobs.resumed)
	})
}
