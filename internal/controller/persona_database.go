package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/connector/postgres"
	"github.com/usersuccess/persona-operator/internal/insight"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/persona"
	"github.com/usersuccess/persona-operator/internal/rule"
	"github.com/usersuccess/persona-operator/internal/sqlrule"
	"github.com/usersuccess/persona-operator/internal/tracker"
)

// A persona whose rule runs in the database (status.evaluation.mode
// Database): the rule translated to one query over its DataSources' queries
// (internal/sqlrule), its members streamed in id order from a read-only
// transaction and merged into the slices as they come (membership.Stream),
// memory bounded by a slice rather than by the members.

// databaseRetry is when an evaluation that failed in the database is tried
// again (sooner when the refresh interval is shorter).
const databaseRetry = time.Minute

// translated is a persona's queries for one spec generation, DataSources and
// database: the members', the next change's (nil when time alone does not
// change it), or why the rule does not translate over the queries' columns.
type translated struct {
	members, next *sqlrule.Query
	timing        rule.Analysis
	refused       error
	insights      []insightQuery
}

// insightQuery is an insight's aggregate query, or why it is not computed
// in the database.
type insightQuery struct {
	spec    v1alpha1.InsightSpec
	query   *sqlrule.InsightQuery
	refused error
}

// databaseDecision is what the hook tells reconcile: the evaluation is done
// (with its result), or the persona evaluates in memory, evaluation saying
// where and why when the database path decided it.
type databaseDecision struct {
	done       bool
	result     ctrl.Result
	err        error
	evaluation v1alpha1.EvaluationStatus
}

// evaluateInDatabase evaluates the persona in the database when
// spec.evaluation asks for it and the rule translates; otherwise it leaves
// the evaluation to the in-memory path. Its sources are read in the
// database, loaded into memory or not (persona.SelectForDatabase), and the
// rule is compiled against the schema they declare.
func (r *PersonaReconciler) evaluateInDatabase(ctx context.Context, p *v1alpha1.Persona, all []v1alpha1.DataSource,
	slices []v1alpha1.PersonaMembership) databaseDecision {
	if p.Spec.Evaluation == "" || p.Spec.Evaluation == v1alpha1.EvaluationInMemory {
		return databaseDecision{}
	}
	sel := persona.SelectForDatabase(&p.Spec, p.Namespace, all)
	if sel.Wait != "" {
		return databaseDecision{} // the in-memory path says what is missing
	}
	sources := pick(all, sel.Sources)
	ptrs := make([]*v1alpha1.DataSource, len(sources))
	for i := range sources {
		ptrs[i] = &sources[i]
	}
	schema, complete := persona.DeclaredSchema(ptrs)
	c, err := r.compiled(p, schema)
	if err != nil || !complete {
		return databaseDecision{} // the in-memory path reports it
	}
	choice, _ := persona.ChooseEvaluation(&p.Spec, c.Rule, sources)
	if choice.Mode != v1alpha1.EvaluationDatabase {
		return databaseDecision{evaluation: choice}
	}
	dsn, err := r.databaseDSN(ctx, sources)
	if err != nil {
		return r.databaseFailed(p, err)
	}
	q, err := r.translate(ctx, p, c, sources, dsn)
	if err != nil {
		return r.databaseFailed(p, err)
	}
	if q.refused != nil {
		// The queries' columns are not what the rule can read exactly:
		// evaluated in memory, with the reason.
		return databaseDecision{evaluation: v1alpha1.EvaluationStatus{Mode: v1alpha1.EvaluationInMemory,
			Reason: string(p.Spec.Evaluation) + ": cannot be evaluated in the database: " + q.refused.Error()}}
	}
	res, err := r.streamMembers(ctx, p, sources, slices, dsn, q, choice)
	if err != nil {
		return r.databaseFailed(p, err)
	}
	return databaseDecision{done: true, result: res}
}

// databaseDSN reads the DSN of the persona's database (its DataSources share
// one dsnSecretRef, persona.InDatabase) as the first DataSource's identity,
// the way the DataSource controller reads it.
func (r *PersonaReconciler) databaseDSN(ctx context.Context, sources []v1alpha1.DataSource) (string, error) {
	ds := &sources[0]
	id, reader, err := r.Identities.Resolve(ds.Namespace, ds.Spec.ServiceAccountName)
	if err != nil {
		return "", err
	}
	refs := refReader{reader: r.APIReader, namespace: ds.Namespace, id: id}
	if reader != nil {
		refs.reader = reader
	}
	if refs.reader == nil {
		refs.reader = r.Client
	}
	ref := ds.Spec.Postgres.DSNSecretRef
	dsn, err := refs.secretKey(ctx, ref.Name, ref.Key, fmt.Sprintf("DataSource %s: spec.postgres.dsnSecretRef", ds.Name))
	return string(dsn), err
}

// translate describes the DataSources' queries and translates the rule and
// its time analysis, once per spec generation, DataSource generations and
// database (the DSN's digest, never the DSN).
func (r *PersonaReconciler) translate(ctx context.Context, p *v1alpha1.Persona, c *persona.Compiled, sources []v1alpha1.DataSource,
	dsn string) (translated, error) {
	sum := sha256.Sum256([]byte(dsn))
	parts := make([]string, 0, 1+len(sources))
	parts = append(parts, hex.EncodeToString(sum[:8]))
	for _, ds := range sources {
		parts = append(parts, fmt.Sprintf("%s:%d", ds.Name, ds.Generation))
	}
	key := strings.Join(parts, ",")
	if t, ok := r.translations.Get(ownerOf(p), p.Generation, key); ok {
		return t, nil
	}
	in := make([]sqlrule.Source, 0, len(sources))
	for _, ds := range sources {
		cols, err := postgres.Describe(ctx, postgres.Config{DSN: dsn, Query: ds.Spec.Postgres.Query})
		if err != nil {
			return translated{}, fmt.Errorf("DataSource %s: %w", ds.Name, err)
		}
		in = append(in, sqlrule.Source{Name: ds.Name, Spec: ds.Spec, Columns: cols})
	}
	t := translated{timing: c.Rule.Analysis()}
	t.members, t.refused = sqlrule.Translate(c.Rule, in, sqlrule.PostgreSQL{})
	if t.refused == nil {
		t.next, t.refused = sqlrule.NextChange(c.Rule, in, sqlrule.PostgreSQL{})
	}
	var refusal *sqlrule.Refusal
	if t.refused != nil && !errors.As(t.refused, &refusal) {
		return translated{}, t.refused
	}
	for _, ci := range c.Insights {
		iq := insightQuery{spec: ci.Spec}
		iq.query, iq.refused = sqlrule.Insight(c.Rule, ci.Program, ci.Spec.Type == v1alpha1.InsightTopValues, in, sqlrule.PostgreSQL{})
		if iq.refused != nil && !errors.As(iq.refused, &refusal) {
			return translated{}, iq.refused
		}
		t.insights = append(t.insights, iq)
	}
	r.translations.Put(ownerOf(p), p.Generation, key, t)
	return t, nil
}

// streamMembers runs the members' query, merges its rows into the slices as
// they come, and records the evaluation as the in-memory path does.
func (r *PersonaReconciler) streamMembers(ctx context.Context, p *v1alpha1.Persona, sources []v1alpha1.DataSource,
	slices []v1alpha1.PersonaMembership, dsn string, q translated, choice v1alpha1.EvaluationStatus) (ctrl.Result, error) {
	now := r.Clock.Now()
	start := r.Clock.Now()
	timeout := r.evaluationTimeout()
	evalCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg := postgres.Config{DSN: dsn, Query: q.members.SQL, Settings: q.members.Settings}
	w := r.sliceWriter(p, slices)
	pipe := &writePipe{ctx: ctx, write: w.write}
	out, err := membership.Stream(membership.StreamInput{
		Stored: cachedSlices(slices), Now: now, MaxPerSlice: sliceSize(p), SampleSize: persona.SampleSize,
		Rows:  memberRows(evalCtx, cfg, q.members.Args(now), timeout),
		Write: pipe.step,
	})
	if werr := pipe.wait(); err == nil {
		err = werr
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	ev := persona.Evaluation{Timing: q.timing}
	if q.next != nil {
		var text *string
		err := postgres.Select(evalCtx, postgres.Config{DSN: dsn, Query: q.next.SQL, Settings: q.next.Settings}, q.next.Args(now), timeout,
			func(rows pgx.Rows) error { return rows.Scan(&text) })
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("the next change by time: %w", err)
		}
		if ev.NextChange, _, err = sqlrule.Instant(text); err != nil {
			return ctrl.Result{}, err
		}
	}
	if ev.Insights, err = insightsInDatabase(evalCtx, postgres.Config{DSN: dsn}, q.insights, now, timeout); err != nil {
		return ctrl.Result{}, err
	}
	ev.Duration = r.Clock.Since(start)
	ev.FullDuration = ev.Duration
	r.memory.Forget(client.ObjectKeyFromObject(p)) // the in-memory path starts over if it takes over
	persona.Record(p, persona.Outcome{
		Eval: ev, Counts: out.Counts, Members: out.Members, Sample: out.Sample, Slices: len(w.written),
		Sources: freshness(sources), Now: now, Evaluation: choice,
	})
	r.announce(p, out.Counts, ev, persona.ModeDatabase)
	return ctrl.Result{RequeueAfter: persona.RequeueAfter(ev, now, refreshInterval(p), time.Time{})}, nil
}

// noValue is why members count as without a value in an insight computed in
// the database: SQL gives NULL for CEL's errors, without their reasons.
const noValue = "the expression has no value (an absent attribute or an error)"

// insightsInDatabase runs each insight's aggregate query; an insight not
// translated says so in its error.
func insightsInDatabase(ctx context.Context, cfg postgres.Config, queries []insightQuery, now time.Time,
	timeout time.Duration) ([]v1alpha1.InsightResult, error) {
	out := make([]v1alpha1.InsightResult, 0, len(queries))
	for _, iq := range queries {
		if iq.refused != nil {
			out = append(out, v1alpha1.InsightResult{Name: iq.spec.Name, Type: iq.spec.Type,
				Error: conditions.Truncate("not computed in the database: "+iq.refused.Error(), 1024)})
			continue
		}
		acc := insight.ForSpec(iq.spec)
		cfg.Query, cfg.Settings = iq.query.SQL, iq.query.Settings
		err := postgres.Select(ctx, cfg, iq.query.Args(now), timeout, func(rows pgx.Rows) error {
			if iq.query.Top {
				var v *string
				var n int64
				if err := rows.Scan(&v, &n); err != nil {
					return errors.New("reading an insight's values from the database failed")
				}
				if v == nil {
					acc.AddMissing(n, noValue)
				} else {
					acc.AddCount(*v, n)
				}
				return nil
			}
			var n, all int64
			var sum, lo, hi *float64
			if err := rows.Scan(&n, &all, &sum, &lo, &hi); err != nil {
				return errors.New("reading an insight's aggregates from the database failed")
			}
			if n > 0 && sum != nil && lo != nil && hi != nil {
				acc.AddNumbers(n, *sum, *lo, *hi)
			}
			acc.AddMissing(all-n, noValue)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("insight %s: %w", iq.spec.Name, err)
		}
		out = append(out, acc.Result())
	}
	return out, nil
}

// memberRows streams the members' query as membership rows.
func memberRows(ctx context.Context, cfg postgres.Config, args []any, timeout time.Duration) func(func(membership.Row, error) bool) {
	return func(yield func(membership.Row, error) bool) {
		errStop := errors.New("stopped")
		err := postgres.Select(ctx, cfg, args, timeout, func(rows pgx.Rows) error {
			var row membership.Row
			if err := rows.Scan(&row.ID, &row.AccountID); err != nil {
				return errors.New("reading a member id from the database failed")
			}
			if !yield(row, nil) {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			yield(membership.Row{}, err)
		}
	}
}

// databaseFailed records an evaluation in the database that failed: Ready
// False with a Warning Event; the slices keep what was written before the
// failure (a partial pass only applies whole slices), and it is tried again.
func (r *PersonaReconciler) databaseFailed(p *v1alpha1.Persona, err error) databaseDecision {
	if s, ok := conditions.AsStalled(err); ok {
		err = errors.New(s.Message)
	}
	msg := persona.DatabaseFailed(p, err)
	r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, v1alpha1.ReasonSourceDegraded, "Evaluate", "%s", msg)
	return databaseDecision{done: true, result: ctrl.Result{RequeueAfter: min(databaseRetry, refreshInterval(p))}}
}

// writePipe makes a stream's slice writes while the rows keep coming, up to
// sliceWriters at once: membership.Stream's writes are independent of each
// other, except those marked After, which wait for every earlier one. The
// first error stops the writes not started yet and is returned by the next
// step or by wait.
type writePipe struct {
	ctx   context.Context
	write func(context.Context, membership.Step) error
	g     *errgroup.Group
	gctx  context.Context
}

func (p *writePipe) step(s membership.Step) error {
	if s.After {
		if err := p.wait(); err != nil {
			return err
		}
	}
	if p.g == nil {
		p.g, p.gctx = errgroup.WithContext(p.ctx)
		p.g.SetLimit(sliceWriters)
	}
	if p.gctx.Err() != nil { // an earlier write failed
		if err := p.wait(); err != nil {
			return err
		}
		return p.ctx.Err()
	}
	p.g.Go(func() error { return p.write(p.gctx, s) })
	return nil
}

// wait waits for the writes started and returns the first error.
func (p *writePipe) wait() error {
	if p.g == nil {
		return nil
	}
	err := p.g.Wait()
	p.g = nil
	return err
}

// sliceWriter makes a persona's slice writes, recording each in the
// tracker; written is the persona's slices (name → generation) after them.
// The writes of one plan phase may run concurrently (Plan.Phases).
type sliceWriter struct {
	r      *PersonaReconciler
	p      *v1alpha1.Persona
	byName map[string]*v1alpha1.PersonaMembership
	mu     sync.Mutex // guards written
	// written must be read only once every write has returned.
	written map[string]int64
}

// record notes a slice's generation after a write (tracker.Deleted: gone).
func (w *sliceWriter) record(name string, gen int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if gen == tracker.Deleted {
		delete(w.written, name)
		return
	}
	w.written[name] = gen
}

func (r *PersonaReconciler) sliceWriter(p *v1alpha1.Persona, cached []v1alpha1.PersonaMembership) *sliceWriter {
	w := &sliceWriter{r: r, p: p, byName: make(map[string]*v1alpha1.PersonaMembership, len(cached)), written: membershipGenerations(cached)}
	for i := range cached {
		w.byName[cached[i].Name] = &cached[i]
	}
	return w
}

// write makes one step of a plan: a delete, a create (no name) or an update
// by optimistic lock.
func (w *sliceWriter) write(ctx context.Context, step membership.Step) error {
	r, p := w.r, w.p
	switch {
	case step.Delete:
		err := r.deleteSlice(ctx, p, w.byName[step.Slice.Name])
		w.record(step.Slice.Name, tracker.Deleted)
		return err
	case step.Slice.Name == "":
		obj, err := r.createSlice(ctx, p, step.Slice.Members)
		if err != nil {
			return err
		}
		w.record(obj.Name, obj.Generation)
		return nil
	}
	obj := w.byName[step.Slice.Name].DeepCopy()
	fill(obj, step.Slice.Members)
	if err := r.Update(ctx, obj); err != nil {
		return fmt.Errorf("updating PersonaMembership %s: %w", obj.Name, err)
	}
	r.writes.Wrote(ownerOf(p), obj.Name, obj.Generation)
	w.record(obj.Name, obj.Generation)
	return nil
}
