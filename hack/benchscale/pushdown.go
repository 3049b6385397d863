package main

// The push-down benchmark (issue 14, -pushdown): the at-risk persona
// evaluated inside PostgreSQL (spec.evaluation Database) over the three
// DataSources with spec.load None, so the manager never loads a profile.
// It measures the persona's translated query run by psql alone, against
// apply -> the persona's slices equal to SQL, and the same after 1 % churn,
// with the manager's RSS throughout.

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/connector/netguard"
	"github.com/usersuccess/persona-operator/internal/connector/postgres"
	"github.com/usersuccess/persona-operator/internal/persona"
	"github.com/usersuccess/persona-operator/internal/sqlrule"
)

// pushdownPersona is the persona evaluated in the database.
const pushdownPersona = "at-risk-enterprise-decision-makers"

// pushdownEdit turns the scale benchmark's manifests into the push-down
// one's: DataSources never loaded, only the at-risk persona, in the database.
func pushdownEdit(u *unstructured.Unstructured) (bool, error) {
	switch u.GetKind() {
	case "DataSource":
		return true, unstructured.SetNestedField(u.Object, string(v1alpha1.LoadNone), "spec", "load")
	case "Persona":
		if u.GetName() != pushdownPersona {
			return false, nil
		}
		// Re-evaluated when the benchmark asks (the reconcile annotation), not
		// by the refresh interval in the middle of a measurement.
		if err := unstructured.SetNestedField(u.Object, "24h", "spec", "refreshInterval"); err != nil {
			return false, err
		}
		return true, unstructured.SetNestedField(u.Object, string(v1alpha1.EvaluationDatabase), "spec", "evaluation")
	}
	return true, nil
}

// pushdown runs the push-down benchmark (after run's common setup).
func (b *bench) pushdown(ctx, wctx context.Context) error {
	b.edit = pushdownEdit
	objs, err := b.manifests("datasources.yaml", "personas.yaml")
	if err != nil {
		return err
	}
	script, err := b.memberScript(ctx, objs)
	if err != nil {
		return err
	}
	want, err := b.expected(ctx)
	if err != nil {
		return err
	}
	b.rep.add("persona %s: %d members in SQL (the annotation's condition)", pushdownPersona, len(want[pushdownPersona]))
	psql, err := b.psqlTimes(ctx, script, 2)
	if err != nil {
		return err
	}

	cpu0, _ := cpuSeconds(b.o.pid)
	t0 := time.Now()
	if err := b.apply(ctx, objs); err != nil {
		return err
	}
	go b.mem.run(wctx, b.c, b.o.namespace)
	tRight, ok := b.waitRight(ctx, want, b.o.readyTimeout)
	b.printCounts(want)
	if !ok {
		return fmt.Errorf("the slices are not equal to SQL %s after apply", b.o.readyTimeout)
	}
	cpu1, _ := cpuSeconds(b.o.pid)
	b.ratio("apply -> slices equal to SQL", tRight.Sub(t0), psql, cpu1-cpu0)
	b.rssSince("apply", t0)
	if err := b.inDatabase(ctx, tRight); err != nil {
		return err
	}

	idleFrom := time.Now()
	time.Sleep(b.o.idle)
	if idle := b.rss.between(idleFrom, time.Now()); len(idle) > 0 {
		b.rep.add("steady RSS over %s idle: median %s (min %s, max %s)", b.o.idle, mib(quantile(idle, 0.5)),
			mib(slices.Min(idle)), mib(slices.Max(idle)))
	}

	rows, err := b.churnUsers(ctx)
	if err != nil {
		return err
	}
	b.rep.add("churn: %d rows changed in one UPDATE (%.2f %% of users; nps and logins_30d)", rows, 100*float64(rows)/float64(b.users))
	if want, err = b.expected(ctx); err != nil {
		return err
	}
	b.rep.add("persona %s after the churn: %d members in SQL", pushdownPersona, len(want[pushdownPersona]))
	// Twice again: the first scan after an UPDATE also sets hint bits and
	// prunes, as the first after the bulk load does.
	if psql, err = b.psqlTimes(ctx, script, 2); err != nil {
		return err
	}
	// What a NOTIFY trigger would do (not built yet): ask for a reconcile.
	cpu2, _ := cpuSeconds(b.o.pid)
	t1 := time.Now()
	if err := b.requestReconcile(ctx, pushdownPersona, "churn"); err != nil {
		return err
	}
	tRight, ok = b.waitRight(ctx, want, b.o.changeTimeout)
	b.printCounts(want)
	if !ok {
		return fmt.Errorf("the slices are not equal to SQL %s after the churn", b.o.changeTimeout)
	}
	cpu3, _ := cpuSeconds(b.o.pid)
	b.ratio("churn: reconcile requested -> slices equal to SQL", tRight.Sub(t1), psql, cpu3-cpu2)
	b.rssSince("churn", t1)
	last, err := b.rss.last()
	if err != nil {
		return err
	}
	b.rep.add("manager RSS peak over the run: VmHWM %s (highest 250 ms sample %s); RSS at the end %s", mib(last.hwm),
		mib(slices.Max(append(b.rss.between(t0, time.Now()), last.rss))), mib(last.rss))
	return nil
}

// ratio reports a manager time against psql's best.
func (b *bench) ratio(what string, d time.Duration, psql []time.Duration, cpu float64) {
	best := slices.Min(psql)
	b.rep.add("%s: %.1fs (manager CPU %.1fs); psql alone %.1fs; ratio %.2f (target <= 1.5)", what, d.Seconds(), cpu,
		best.Seconds(), d.Seconds()/best.Seconds())
}

// rssSince reports the highest RSS sample since t.
func (b *bench) rssSince(phase string, t time.Time) {
	if s := b.rss.between(t, time.Now()); len(s) > 0 {
		b.rep.add("manager RSS during %s: highest 250 ms sample %s (target <= 256 MiB)", phase, mib(slices.Max(s)))
	}
}

// inDatabase checks that the persona was evaluated in the database: an
// in-memory evaluation could not be (its sources are not loaded), but the
// figure would be meaningless if it was not.
func (b *bench) inDatabase(ctx context.Context, since time.Time) error {
	var p v1alpha1.Persona
	// The status is patched after the last slice write, once the insights
	// and the next change by time have been computed, each its own query.
	for deadline := time.Now().Add(b.o.readyTimeout); ; time.Sleep(250 * time.Millisecond) {
		if err := b.c.Get(ctx, client.ObjectKey{Namespace: b.o.namespace, Name: pushdownPersona}, &p); err != nil {
			return err
		}
		if p.Status.Evaluation != nil && p.Status.ObservedGeneration == p.Generation || time.Now().After(deadline) {
			break
		}
	}
	b.rep.add("slices equal -> status recorded (after the insights' and the next change's queries): %.1fs", time.Since(since).Seconds())
	if ev := p.Status.Evaluation; ev == nil || ev.Mode != v1alpha1.EvaluationDatabase {
		return fmt.Errorf("persona %s is not evaluated in the database: %+v", pushdownPersona, ev)
	}
	b.rep.add("persona %s: status.evaluation %s (%s); %d members in %d slices", pushdownPersona, p.Status.Evaluation.Mode,
		p.Status.Evaluation.Reason, p.Status.Members, p.Status.Slices)
	return nil
}

// requestReconcile sets the persona's reconcile-requested annotation.
func (b *bench) requestReconcile(ctx context.Context, name, value string) error {
	p := &v1alpha1.Persona{}
	if err := b.c.Get(ctx, client.ObjectKey{Namespace: b.o.namespace, Name: name}, p); err != nil {
		return err
	}
	patch := client.MergeFrom(p.DeepCopy())
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[v1alpha1.ReconcileRequestAnnotation] = value
	return b.c.Patch(ctx, p, patch)
}

// memberScript is a psql script running the persona's members query as the
// manager runs it: translated by sqlrule over the DataSources' described
// columns, with the dialect's settings and now bound.
func (b *bench) memberScript(ctx context.Context, objs []*unstructured.Unstructured) (string, error) {
	var (
		spec    v1alpha1.PersonaSpec
		sources []*v1alpha1.DataSource
	)
	for _, u := range objs {
		switch u.GetKind() {
		case "DataSource":
			ds := &v1alpha1.DataSource{}
			if err := convert(u, ds); err != nil {
				return "", err
			}
			sources = append(sources, ds)
		case "Persona":
			var p v1alpha1.Persona
			if err := convert(u, &p); err != nil {
				return "", err
			}
			spec = p.Spec
		}
	}
	schema, _ := persona.DeclaredSchema(sources)
	c, err := persona.Compile(&spec, schema)
	if err != nil {
		return "", err
	}
	netguard.SetSources(netguard.Policy{}) // the benchmark's database is on loopback
	in := make([]sqlrule.Source, 0, len(sources))
	for _, ds := range sources {
		cols, err := postgres.Describe(ctx, postgres.Config{DSN: b.o.dsn, Query: ds.Spec.Postgres.Query})
		if err != nil {
			return "", fmt.Errorf("DataSource %s: %w", ds.Name, err)
		}
		in = append(in, sqlrule.Source{Name: ds.Name, Spec: ds.Spec, Columns: cols})
	}
	q, err := sqlrule.Translate(c.Rule, in, sqlrule.PostgreSQL{})
	if err != nil {
		return "", err
	}
	var s strings.Builder
	for _, name := range slices.Sorted(maps.Keys(q.Settings)) {
		fmt.Fprintf(&s, "SET %s = %s;\n", name, literal(q.Settings[name]))
	}
	fmt.Fprintf(&s, "PREPARE members AS\n%s;\n", q.SQL)
	args := q.Args(time.Now())
	lits := make([]string, len(args))
	for i, a := range args {
		lits[i] = literal(a)
	}
	fmt.Fprintf(&s, "EXECUTE members(%s);\n", strings.Join(lits, ", "))
	path := filepath.Join(b.o.out, "members.sql")
	return path, os.WriteFile(path, []byte(s.String()), 0o644)
}

// literal is a value as an SQL literal (each parameter is cast in the query).
func literal(v any) string {
	if v == nil {
		return "NULL"
	}
	return "'" + strings.ReplaceAll(fmt.Sprint(v), "'", "''") + "'"
}

// psqlTimes runs the script n times with psql, its rows to /dev/null, and
// reports each wall time (connection included, as the manager's includes
// its own).
func (b *bench) psqlTimes(ctx context.Context, script string, n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n {
		t := time.Now()
		cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null", "-f", script, b.o.dsn)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("psql: %w: %s", err, msg)
		}
		out = append(out, time.Since(t))
		b.rep.add("psql -f %s (run %d): %.1fs", filepath.Base(script), i+1, out[i].Seconds())
	}
	return out, nil
}

// convert decodes a manifest's object into its typed form.
func convert(u *unstructured.Unstructured, obj any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj)
}
