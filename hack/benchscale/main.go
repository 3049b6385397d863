// Command benchscale measures one manager at scale (issue 12): it applies the
// scale benchmark's DataSources, personas and playbook (hack/bench) to a
// namespace whose manager already runs, then measures
//
//   - the manager's RSS (VmRSS sampled every 250 ms, VmHWM) and CPU time;
//   - apply -> all personas Ready, and -> every persona's PersonaMembership
//     slices equal to what PostgreSQL computes with the same rule in SQL;
//   - single-row changes (UPDATE users SET nps=3, updated_at=now() for users who
//     are not detractors): UPDATE commit -> the user in the detractors slices,
//     and -> the playbook's Job for the user, both seen through API watches;
//   - 1 % churn (one UPDATE of that many random users) -> every persona's
//     slices equal to SQL again;
//   - a heap profile of the live manager (its --pprof-bind-address), with
//     `go tool pprof -top` of inuse_space.
//
// It prints every figure and writes them, with rss.csv and the profile, to -out.
// hack/bench-scale.sh starts PostgreSQL, the control plane and the manager and
// runs it: `make bench-scale USERS=100000`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// whereAnnotation holds a bench persona's rule as a SQL condition.
const whereAnnotation = "bench.usersuccess.io/where"

// The persona the single-row changes enter, and the playbook on it.
const (
	latencyPersona  = "detractors"
	latencyPlaybook = "detractor-outreach"
	secretName      = "bench-postgres"
)

type options struct {
	kubeconfig, namespace, dsn, manifests, pprofAddr, out, command string
	pid                                                            int
	changes, churn                                                 int
	spread, idle, readyTimeout, changeTimeout, readyProfile        time.Duration
	incremental, pushdown                                          bool
}

func main() {
	var o options
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "admin kubeconfig")
	flag.StringVar(&o.namespace, "namespace", "bench-scale", "namespace the manager serves (must exist)")
	flag.StringVar(&o.dsn, "dsn", "", "PostgreSQL DSN of the data hack/gendata -postgres loaded")
	flag.StringVar(&o.manifests, "manifests", "hack/bench", "directory with datasources.yaml, personas.yaml, playbook.yaml")
	flag.IntVar(&o.pid, "manager-pid", 0, "PID of the running manager (RSS and CPU are read from /proc)")
	flag.StringVar(&o.pprofAddr, "pprof", "", "the manager's --pprof-bind-address (host:port)")
	flag.StringVar(&o.out, "out", "", "directory for results.txt, rss.csv, heap.pb.gz, heap-top.txt")
	flag.StringVar(&o.command, "command", "", "the command line that ran the benchmark, for the report")
	flag.IntVar(&o.changes, "changes", 100, "single-row changes timed")
	flag.BoolVar(&o.incremental, "incremental", false, "sync every source incrementally (spec.postgres.incremental on updated_at) "+
		"and wake the manager with a NOTIFY trigger on users, as docs/connectors.md recommends")
	flag.BoolVar(&o.pushdown, "pushdown", false, "the push-down benchmark (issue 14): only the at-risk persona, evaluated in "+
		"the database over DataSources never loaded (spec.load None); psql time of its query against the manager's")
	flag.IntVar(&o.churn, "churn", 0, "rows changed at once in the churn phase (0: 1 % of users)")
	flag.DurationVar(&o.spread, "spread", time.Minute, "the single-row changes are spread evenly over this long "+
		"(at least one sync interval, so they land at every phase of the sync cycle)")
	flag.DurationVar(&o.idle, "idle", time.Minute, "idle time after the memberships are right, over which steady RSS is taken")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 30*time.Minute, "longest wait for Ready and right memberships")
	flag.DurationVar(&o.readyProfile, "ready-profile", 90*time.Second, "CPU profile this long from the DataSources Ready "+
		"(cpu-ready.pb.gz): the personas' first passes")
	flag.DurationVar(&o.changeTimeout, "change-timeout", 5*time.Minute, "longest wait for a phase's changes to show")
	flag.Parse()
	if o.kubeconfig == "" || o.dsn == "" || o.pid == 0 || o.out == "" {
		fmt.Fprintln(os.Stderr, "benchscale: -kubeconfig, -dsn, -manager-pid and -out are required")
		os.Exit(2)
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "benchscale:", err)
		os.Exit(1)
	}
}

// report prints each line and keeps it for results.txt.
type report struct {
	mu    sync.Mutex
	lines []string
}

func (r *report) add(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	fmt.Println(line)
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
}

type bench struct {
	o     options
	c     client.WithWatch
	db    *pgx.Conn
	rep   *report
	rss   *sampler
	mem   *memberships
	where map[string]string // persona -> SQL condition
	// edit, when set, changes each manifest object before it is created
	// (false: left out).
	edit  func(*unstructured.Unstructured) (bool, error)
	users int
	// onSourcesReady runs once, when waitReady first sees every DataSource Ready.
	onSourcesReady func()
}

func run(ctx context.Context, o options) (err error) {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 50, 100
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	db, err := pgx.Connect(ctx, o.dsn)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer func() { _ = db.Close(ctx) }()

	b := &bench{o: o, c: c, db: db, rep: &report{}, rss: &sampler{pid: o.pid}, mem: newMemberships(),
		where: map[string]string{}}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&b.users); err != nil {
		return err
	}
	var accounts, requests int
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM feature_requests)`).
		Scan(&accounts, &requests); err != nil {
		return err
	}
	if o.churn == 0 {
		o.churn = max(1, b.users/100)
		b.o.churn = o.churn
	}

	stop := make(chan struct{})
	go b.rss.run(stop, 250*time.Millisecond)
	wctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		close(stop)
		if werr := b.writeResults(); err == nil {
			err = werr
		}
	}()

	title := "Scale benchmark (issue 12)"
	if o.pushdown {
		title = "Push-down benchmark (issue 14)"
	}
	b.rep.add("# %s: %s, %d cores", title, time.Now().UTC().Format(time.RFC3339), numCPU())
	if o.command != "" {
		b.rep.add("command: %s", o.command)
	}
	b.rep.add("data: %d users, %d accounts, %d feature requests (PostgreSQL); namespace %s", b.users, accounts, requests, o.namespace)
	rss0, _, err := procStatus(o.pid)
	if err != nil {
		return fmt.Errorf("manager pid %d: %w", o.pid, err)
	}
	cpu0, _ := cpuSeconds(o.pid)
	b.rep.add("manager RSS before apply: %s", mib(rss0))

	if o.pushdown {
		return b.pushdown(ctx, wctx)
	}
	objs, err := b.manifests("datasources.yaml", "personas.yaml")
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := b.apply(ctx, objs); err != nil {
		return err
	}
	lat := newLatencies()
	b.mem.onMember = func(persona, id string, at time.Time) {
		if persona == latencyPersona {
			lat.seen(lat.member, id, at)
		}
	}
	go b.mem.run(wctx, c, o.namespace)
	go watchJobs(wctx, c, o.namespace, latencyPlaybook, func(id string, at time.Time) { lat.seen(lat.job, id, at) })

	// A CPU profile of the personas' first passes, from the moment the
	// DataSources are Ready: where the time to Ready goes.
	readyProfiled := make(chan struct{})
	b.onSourcesReady = func() {
		go func() {
			defer close(readyProfiled)
			b.cpuProfileAs(ctx, o.readyProfile, "cpu-ready", "the personas' first passes (from the DataSources Ready)")
		}()
	}
	if err := b.waitReady(ctx, t0); err != nil {
		return err
	}
	want, err := b.expected(ctx)
	if err != nil {
		return err
	}
	tRight, ok := b.waitRight(ctx, want, o.readyTimeout-time.Since(t0))
	b.printCounts(want)
	if !ok {
		return fmt.Errorf("memberships not equal to SQL %s after apply", o.readyTimeout)
	}
	b.rep.add("apply -> every persona's slices equal to SQL: %.1fs", tRight.Sub(t0).Seconds())
	cpuLoad, _ := cpuSeconds(o.pid)
	b.rep.add("manager CPU from apply to right memberships: %.1fs", cpuLoad-cpu0)
	// The playbook comes last: applied before the personas have members, it
	// would launch a Job for every initial member (they all enter after it).
	if err := b.create(ctx, "playbook.yaml"); err != nil {
		return err
	}

	// Steady state: the sources re-sync every interval meanwhile. The idle
	// minute's CPU profile says what still runs when nothing changes.
	<-readyProfiled // one CPU profile at a time
	idleFrom := time.Now()
	b.cpuProfileAs(ctx, o.idle, "cpu-idle", "the idle minute")
	time.Sleep(time.Until(idleFrom.Add(o.idle))) // should the profile have failed early
	idle := b.rss.between(idleFrom, time.Now())
	if len(idle) == 0 {
		_, err := b.rss.last()
		return fmt.Errorf("no RSS sample while idle: %w", err)
	}
	cpuIdle, _ := cpuSeconds(o.pid)
	b.rep.add("steady RSS over %s idle (sources re-syncing): median %s (min %s, max %s, %d samples); manager CPU %.1fs in it",
		o.idle, mib(quantile(idle, 0.5)), mib(slices.Min(idle)), mib(slices.Max(idle)), len(idle), cpuIdle-cpuLoad)

	if err := b.singleChanges(ctx, lat); err != nil {
		return err
	}
	if err := b.churn(ctx); err != nil {
		return err
	}
	if err := b.heapProfile(ctx); err != nil {
		b.rep.add("heap profile: %v", err)
	}
	last, err := b.rss.last()
	if err != nil {
		return err
	}
	all := append(b.rss.between(t0, time.Now()), last.rss)
	b.rep.add("manager RSS peak: VmHWM %s (highest 250 ms sample %s); RSS at the end %s", mib(last.hwm),
		mib(slices.Max(all)), mib(last.rss))
	return nil
}

func numCPU() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	var n int
	_, _ = fmt.Sscan(string(out), &n)
	return n
}

// apply creates the DSN Secret and the objects (the DataSources and the
// personas).
func (b *bench) apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	ns := b.o.namespace
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: ns},
		StringData: map[string]string{"dsn": b.o.dsn}}
	if err := b.c.Create(ctx, sec); err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	if b.o.incremental {
		if _, err := b.db.Exec(ctx, notifyTrigger); err != nil {
			return fmt.Errorf("creating the NOTIFY trigger: %w", err)
		}
	}
	return b.createAll(ctx, objs)
}

// notifyTrigger wakes the manager after every statement that changes users
// (docs/connectors.md); the benchmark's UPDATEs set updated_at themselves.
const notifyTrigger = `
CREATE OR REPLACE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('` + notifyChannel + `', '');
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS bench_notify ON users;
CREATE TRIGGER bench_notify AFTER INSERT OR UPDATE OR DELETE ON users
  FOR EACH STATEMENT EXECUTE FUNCTION bench_notify();`

const (
	usersSource   = "bench-users"
	notifyChannel = "bench_users"
)

// makeIncremental turns a DataSource incremental on updated_at (every table
// gendata writes has it), the users woken by NOTIFY.
func makeIncremental(u *unstructured.Unstructured) error {
	inc := map[string]any{"watermarkColumn": "updated_at"}
	if u.GetName() == usersSource {
		inc["notifyChannel"] = notifyChannel
	}
	return unstructured.SetNestedMap(u.Object, inc, "spec", "postgres", "incremental")
}

// create creates the objects of the manifest files in the namespace.
func (b *bench) create(ctx context.Context, files ...string) error {
	objs, err := b.manifests(files...)
	if err != nil {
		return err
	}
	return b.createAll(ctx, objs)
}

// manifests reads the objects of the manifest files for the namespace, as
// the options and b.edit change them, and notes every persona's SQL.
func (b *bench) manifests(files ...string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, f := range files {
		objs, err := readManifests(filepath.Join(b.o.manifests, f))
		if err != nil {
			return nil, err
		}
		for _, u := range objs {
			u.SetNamespace(b.o.namespace)
			if b.o.incremental && u.GetKind() == "DataSource" {
				if err := makeIncremental(u); err != nil {
					return nil, err
				}
			}
			if b.edit != nil {
				if keep, err := b.edit(u); err != nil || !keep {
					if err != nil {
						return nil, err
					}
					continue
				}
			}
			if u.GetKind() == "Persona" {
				w := u.GetAnnotations()[whereAnnotation]
				if w == "" {
					return nil, fmt.Errorf("%s: persona %s has no %s annotation", f, u.GetName(), whereAnnotation)
				}
				b.where[u.GetName()] = w
			}
			out = append(out, u)
		}
	}
	return out, nil
}

// createAll creates the objects.
func (b *bench) createAll(ctx context.Context, objs []*unstructured.Unstructured) error {
	for _, u := range objs {
		if err := b.c.Create(ctx, u); err != nil {
			return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

func readManifests(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	d := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := d.Decode(&m); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// waitReady polls until every DataSource and every persona is Ready for its
// current generation.
func (b *bench) waitReady(ctx context.Context, t0 time.Time) error {
	var dsAt time.Time
	for {
		if time.Since(t0) > b.o.readyTimeout {
			return fmt.Errorf("not Ready after %s", b.o.readyTimeout)
		}
		var dss v1alpha1.DataSourceList
		var ps v1alpha1.PersonaList
		if err := b.c.List(ctx, &dss, client.InNamespace(b.o.namespace)); err != nil {
			return err
		}
		if err := b.c.List(ctx, &ps, client.InNamespace(b.o.namespace)); err != nil {
			return err
		}
		dsReady := len(dss.Items) == 3
		for _, d := range dss.Items {
			dsReady = dsReady && ready(d.Status.Conditions, d.Generation, d.Status.ObservedGeneration)
		}
		if dsReady && dsAt.IsZero() {
			dsAt = time.Now()
			for _, d := range dss.Items {
				dur := "?"
				if d.Status.LastSyncDuration != nil {
					dur = d.Status.LastSyncDuration.Duration.String()
				}
				b.rep.add("  DataSource %-24s %8d records, last sync took %s", d.Name, d.Status.RecordsAccepted, dur)
			}
			b.rep.add("apply -> all 3 DataSources Ready: %.1fs", dsAt.Sub(t0).Seconds())
			if b.onSourcesReady != nil {
				b.onSourcesReady()
			}
		}
		pReady := len(ps.Items) == len(b.where)
		for _, p := range ps.Items {
			pReady = pReady && ready(p.Status.Conditions, p.Generation, p.Status.ObservedGeneration)
		}
		if dsReady && pReady {
			b.rep.add("apply -> all %d personas Ready: %.1fs", len(ps.Items), time.Since(t0).Seconds())
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func ready(conds []metav1.Condition, generation, observed int64) bool {
	return observed == generation && meta.IsStatusConditionTrue(conds, "Ready")
}

// expected computes every persona's members in SQL.
func (b *bench) expected(ctx context.Context) (map[string]map[string]struct{}, error) {
	out := map[string]map[string]struct{}{}
	for name, where := range b.where {
		rows, err := b.db.Query(ctx, `SELECT u.id FROM users u JOIN accounts a ON a.account_id = u.account_id WHERE `+where)
		if err != nil {
			return nil, fmt.Errorf("persona %s: %w", name, err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("persona %s: %w", name, err)
		}
		set := make(map[string]struct{}, len(ids))
		for _, id := range ids {
			set[id] = struct{}{}
		}
		out[name] = set
	}
	return out, nil
}

// waitRight waits until every persona's slices hold exactly want's members and
// returns when they first did.
func (b *bench) waitRight(ctx context.Context, want map[string]map[string]struct{}, timeout time.Duration) (time.Time, bool) {
	deadline := time.After(timeout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if b.allRight(want) {
			return time.Now(), true
		}
		select {
		case <-b.mem.changed:
		case <-tick.C:
		case <-deadline:
			return time.Time{}, false
		case <-ctx.Done():
			return time.Time{}, false
		}
	}
}

func (b *bench) allRight(want map[string]map[string]struct{}) bool {
	for name, w := range want {
		if m, e := setDiff(b.mem.members(name), w); m+e > 0 {
			return false
		}
	}
	return true
}

func (b *bench) printCounts(want map[string]map[string]struct{}) {
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		got, nslices := b.mem.members(n), b.mem.sliceCount(n)
		m, e := setDiff(got, want[n])
		b.rep.add("  persona %-36s SQL %7d  in %4d slices %7d  missing %d  extra %d", n, len(want[n]), nslices, len(got), m, e)
	}
}

// latencies records, per user, when a change was committed and when its
// membership and its Job were first seen.
type latencies struct {
	mu          sync.Mutex
	committed   map[string]time.Time
	member, job map[string]time.Duration
}

func newLatencies() *latencies {
	return &latencies{committed: map[string]time.Time{}, member: map[string]time.Duration{}, job: map[string]time.Duration{}}
}

func (l *latencies) seen(m map[string]time.Duration, id string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.committed[id]
	if _, done := m[id]; ok && !done {
		m[id] = at.Sub(c)
	}
}

func (l *latencies) counts() (committed, members, jobs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.committed), len(l.member), len(l.job)
}

func values(m map[string]time.Duration) []time.Duration {
	out := make([]time.Duration, 0, len(m))
	for _, d := range m {
		out = append(out, d)
	}
	return out
}

// singleChanges makes -changes users detractors, one UPDATE each, spread over
// -spread, and times each to its membership and its Job.
func (b *bench) singleChanges(ctx context.Context, lat *latencies) error {
	n := b.o.changes
	rows, err := b.db.Query(ctx, `SELECT id FROM users WHERE nps IS NULL OR nps > 6 ORDER BY md5(id) LIMIT $1`, n)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(ids) < n {
		return fmt.Errorf("only %d users can enter %s", len(ids), latencyPersona)
	}
	cpu0, _ := cpuSeconds(b.o.pid)
	start := time.Now()
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		b.cpuProfile(ctx, b.o.spread+10*time.Second)
	}()
	defer func() { <-profiled }()
	for i, id := range ids {
		time.Sleep(time.Until(start.Add(b.o.spread * time.Duration(i) / time.Duration(n))))
		if _, err := b.db.Exec(ctx, `UPDATE users SET nps = 3, updated_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		at := time.Now() // the commit is acknowledged
		lat.mu.Lock()
		lat.committed[id] = at
		lat.mu.Unlock()
	}
	deadline := time.Now().Add(b.o.changeTimeout)
	for {
		_, m, j := lat.counts()
		if m == n && j == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	cpu1, _ := cpuSeconds(b.o.pid)
	lat.mu.Lock()
	defer lat.mu.Unlock()
	b.rep.add("%d single-row changes (UPDATE users SET nps = 3, updated_at = now() WHERE id = ..., one every %s):",
		n, (b.o.spread / time.Duration(n)).Round(time.Millisecond))
	b.rep.add("  UPDATE commit -> user in %s slices: %s", latencyPersona, latencySummary(values(lat.member)))
	b.rep.add("  UPDATE commit -> %s Job exists:   %s", latencyPlaybook, latencySummary(values(lat.job)))
	b.rep.add("  manager CPU over the phase (%.0fs): %.1fs", time.Since(start).Seconds(), cpu1-cpu0)
	if len(lat.member) < n || len(lat.job) < n {
		b.rep.add("  NOT SEEN within %s: %d memberships, %d Jobs", b.o.changeTimeout, n-len(lat.member), n-len(lat.job))
	}
	return nil
}

// churn changes -churn random users' NPS and logins in one transaction and
// times until every persona's slices equal SQL again.
func (b *bench) churn(ctx context.Context) error {
	rows, err := b.churnUsers(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	cpu0, _ := cpuSeconds(b.o.pid)
	want, err := b.expected(ctx)
	if err != nil {
		return err
	}
	b.rep.add("churn: %d rows changed in one UPDATE (%.2f %% of users; nps and logins_30d)", rows,
		100*float64(rows)/float64(b.users))
	at, ok := b.waitRight(ctx, want, b.o.changeTimeout)
	b.printCounts(want)
	cpu1, _ := cpuSeconds(b.o.pid)
	if !ok {
		b.rep.add("  NOT all memberships equal to SQL within %s", b.o.changeTimeout)
		return nil
	}
	b.rep.add("  UPDATE commit -> every persona's slices equal to SQL: %.1fs (manager CPU %.1fs)",
		at.Sub(t0).Seconds(), cpu1-cpu0)
	return nil
}

// churnUsers changes -churn random users' NPS and logins in one transaction
// and returns how many rows changed.
func (b *bench) churnUsers(ctx context.Context) (int64, error) {
	tx, err := b.db.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// Same rows and values every run: ids ordered by a hash, values from it too.
	tag, err := tx.Exec(ctx, `UPDATE users SET
		nps = CASE WHEN ('x' || substr(md5(id || 'nps'), 1, 4))::bit(16)::int % 10 < 3 THEN NULL
		           ELSE ('x' || substr(md5(id || 'v'), 1, 4))::bit(16)::int % 11 END,
		logins_30d = ('x' || substr(md5(id || 'l'), 1, 4))::bit(16)::int % 40,
		updated_at = now()
		WHERE id IN (SELECT id FROM users ORDER BY md5(id || 'churn') LIMIT $1)`, b.o.churn)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), tx.Commit(ctx)
}

// heapProfile fetches the live heap (after a GC) and saves pprof's top.
func (b *bench) heapProfile(ctx context.Context) error {
	top, err := b.profile(ctx, "heap?gc=1", "heap", "-sample_index=inuse_space")
	if err != nil {
		return err
	}
	rss, _, _ := procStatus(b.o.pid)
	b.rep.add("heap profile (inuse_space after a GC; RSS then %s; %s/heap-top.txt):", mib(rss), b.o.out)
	b.addTop(top, 10)
	return nil
}

// cpuProfile profiles the manager's CPU for d (the single-change phase), so a
// latency figure comes with where the manager's time went meanwhile.
func (b *bench) cpuProfile(ctx context.Context, d time.Duration) {
	b.cpuProfileAs(ctx, d, "cpu", "the single-row changes")
}

// cpuProfileAs saves a CPU profile of the next d as <name>.pb.gz and adds its
// top to the report.
func (b *bench) cpuProfileAs(ctx context.Context, d time.Duration, name, what string) {
	top, err := b.profile(ctx, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), name, "-cum")
	if err != nil {
		b.rep.add("cpu profile: %v", err)
		return
	}
	b.rep.add("cpu profile over %s (%s, cumulative; %s/%s-top.txt):", what, d, b.o.out, name)
	b.addTop(top, 25)
}

// profile fetches /debug/pprof/<path> from the manager into <name>.pb.gz and
// returns `go tool pprof -top` of it (also saved as <name>-top.txt).
func (b *bench) profile(ctx context.Context, path, name string, topArgs ...string) ([]byte, error) {
	if b.o.pprofAddr == "" {
		return nil, errors.New("no -pprof address")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.o.pprofAddr+"/debug/pprof/"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	prof := filepath.Join(b.o.out, name+".pb.gz")
	if err := os.WriteFile(prof, data, 0o644); err != nil {
		return nil, err
	}
	args := append(append([]string{"tool", "pprof", "-top"}, topArgs...), prof)
	top, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof: %w\n%s", err, top)
	}
	return top, os.WriteFile(filepath.Join(b.o.out, name+"-top.txt"), top, 0o644)
}

// addTop reports the first n entries of pprof's top.
func (b *bench) addTop(top []byte, n int) {
	shown := 0
	for _, l := range strings.Split(strings.TrimSpace(string(top)), "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Type:") ||
			strings.HasPrefix(l, "Time:") {
			continue
		}
		b.rep.add("  %s", l)
		if !strings.HasPrefix(l, "Showing") && !strings.HasPrefix(l, "Dropped") && !strings.Contains(l, "flat%") {
			shown++
		}
		if shown == n {
			break
		}
	}
}

func (b *bench) writeResults() error {
	b.rep.mu.Lock()
	text := strings.Join(b.rep.lines, "\n") + "\n"
	b.rep.mu.Unlock()
	if err := os.WriteFile(filepath.Join(b.o.out, "results.txt"), []byte(text), 0o644); err != nil {
		return err
	}
	b.rss.mu.Lock()
	var t0 time.Time
	if len(b.rss.all) > 0 {
		t0 = b.rss.all[0].at
	}
	b.rss.mu.Unlock()
	return b.rss.writeCSV(filepath.Join(b.o.out, "rss.csv"), t0)
}
