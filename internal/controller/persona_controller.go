package controller

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/persona"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/rule"
	"github.com/usersuccess/persona-operator/internal/tracker"
)

// +kubebuilder:rbac:groups=personas.usersuccess.io,resources=personamemberships,verbs=get;list;watch;create;update;patch;delete

// PersonaReconciler keeps a Persona's membership current: it evaluates the rule
// over the namespace's profile store, stores members in PersonaMembership slices,
// and reports entries, exits and insights.
type PersonaReconciler struct {
	client.Client
	// APIReader reads the Persona itself uncached: its status holds counters
	// (totalEntered) that a stale cached copy would roll back.
	APIReader client.Reader
	Store     *profile.Store
	// StoreEvents carries "the profiles of this namespace changed" from the
	// DataSource controller; status alone does not show every store change.
	StoreEvents <-chan event.GenericEvent
	Clock       clock.PassiveClock
	Recorder    events.EventRecorder
	// Workers is how many personas evaluate at once (default: the number of
	// CPUs). Evaluations only read the store, so they run in parallel.
	Workers int
	// EvaluationTimeout bounds one evaluation (default
	// DefaultEvaluationTimeout): a namespace's rule over its profiles cannot
	// hold a worker, and the store's read lock, for longer.
	EvaluationTimeout time.Duration
	// Identities gives the client that reads the DSN Secret of a persona
	// evaluated in the database, as its DataSources' identity.
	Identities *Identities

	// writes are the slice writes the cache may not show yet.
	writes tracker.Writes
	// compiledRules caches each persona's programs per spec generation and schema.
	compiledRules tracker.Memo[compiledEntry]
	// memory is each persona's last stored evaluation, for change-driven
	// evaluation (persona.Memory).
	memory tracker.Memo[*persona.Memory]
	// translations caches the SQL of personas evaluated in the database
	// (persona_database.go).
	translations tracker.Memo[translated]
}

// compiledEntry is a persona's programs, or why they do not compile.
type compiledEntry struct {
	compiled *persona.Compiled
	err      error
}

// forget drops what the reconciler keeps in memory for a deleted persona.
func (r *PersonaReconciler) forget(name types.NamespacedName) {
	r.writes.Forget(name)
	r.compiledRules.Forget(name)
	r.memory.Forget(name)
	r.translations.Forget(name)
	forgetPersona(name.Namespace, name.Name)
}

func ownerOf(o client.Object) tracker.Owner {
	return tracker.Owner{NamespacedName: client.ObjectKeyFromObject(o), UID: o.GetUID()}
}

// Reconcile evaluates one Persona and writes what changed.
func (r *PersonaReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p v1alpha1.Persona
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	if err := reader.Get(ctx, req.NamespacedName, &p); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !p.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if err := r.mirrorStage(ctx, &p); err != nil {
		return ctrl.Result{}, err
	}
	if p.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	before := p.DeepCopy()
	result, err := r.reconcile(ctx, &p)
	if perr := r.patchStatus(ctx, before, &p); perr != nil && err == nil {
		err = perr
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	return result, nil
}

func (r *PersonaReconciler) reconcile(ctx context.Context, p *v1alpha1.Persona) (ctrl.Result, error) {
	var all v1alpha1.DataSourceList
	if err := r.List(ctx, &all, client.InNamespace(p.Namespace)); err != nil {
		return ctrl.Result{}, err
	}
	slices, stale, err := r.ownSlices(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	if stale {
		return ctrl.Result{RequeueAfter: time.Second}, nil // wait for our own writes to reach the cache
	}

	// --- evaluation in the database (persona_database.go): its sources are
	// read there, so it does not wait for them to load into memory ---
	db := r.evaluateInDatabase(ctx, p, all.Items, slices)
	if db.done {
		return db.result, db.err
	}

	sources, sel := r.sources(p, all.Items)
	switch {
	case sel.Invalid != nil:
		r.invalidRule(p, sel.Invalid)
		return ctrl.Result{}, nil // a spec or DataSource change re-triggers
	case sel.NotLoaded != "":
		r.sourcesNotLoaded(p, sel.NotLoaded, db.evaluation)
		return ctrl.Result{}, nil // a spec or DataSource change re-triggers
	case sel.Wait != "":
		// Evaluating against a half-loaded store would make users exit.
		persona.MarkWaiting(p, sel.Wait)
		return ctrl.Result{}, nil
	}
	cached := membershipGenerations(slices)
	// --- otherwise in memory ---

	playbooks, err := r.playbooks(ctx, p.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()
	mem, _ := r.memory.Get(ownerOf(p), p.Generation, "")
	var (
		ev          persona.Evaluation
		compileErr  error
		unpublished []string
		mode        = persona.ModeChanged
		key         string
		gen         uint64
		detached    *profile.View
		compiled    *persona.Compiled
		evaluation  = db.evaluation
		in          persona.PlanInput
	)
	evalCtx, cancel := context.WithTimeout(ctx, r.evaluationTimeout())
	defer cancel()
	profiles := 0
	r.Store.Namespace(p.Namespace).Read(sel.Sources, func(v *profile.View) {
		schema := v.Schema()
		c, err := r.compiled(p, schema)
		if err != nil {
			compileErr = err
			return
		}
		c, profiles = c.WithContext(evalCtx), v.UsersKnown()
		if evaluation.Mode == "" {
			evaluation, _ = persona.ChooseEvaluation(&p.Spec, c.Rule, sources)
		}
		if unpublished = persona.Unpublished(c, v, playbooks); len(unpublished) > 0 {
			return
		}
		key, gen = memoryKey(p, schema, sel.Sources), v.Generation()
		in = persona.PlanInput{Key: key, Slices: cached, Partial: sel.Partial, Now: now, Refresh: refreshInterval(p),
			Profiles: v.UsersKnown(), FullInterval: persona.MinFullInterval}
		if mem != nil {
			in.Changes = v.Changes(mem.Generation)
		}
		full := persona.FullReason(mem, in) != ""
		if !full {
			var ok bool
			ev, ok = persona.EvaluateChanged(v, c, mem, in.Changes, now, r.Clock.Now)
			full = !ok
		}
		if full {
			// Every profile is evaluated on a detached view, after the read
			// lock is released: syncs apply their changes meanwhile instead
			// of waiting seconds for a million profiles.
			mode, detached, compiled = persona.ModeFull, v.Detach(), c
		}
	})
	if detached != nil {
		ev = persona.EvaluateMembers(detached, compiled, now, r.Clock.Now)
		switch verdicts, ok := persona.FullVerdicts(mem, ev, detached, in); {
		case ok:
			ev.Verdicts = verdicts // only the users whose membership differs are written, as in a change-driven pass
		case sel.Partial:
			persona.KeepAbsent(&ev, detached, accounts(membership.Members(toSlices(slices))))
		default:
			ev.MatchingOf(detached)
		}
	}
	if compileErr != nil {
		r.invalidRule(p, compileErr)
		return ctrl.Result{}, nil // a spec or schema change re-triggers
	}
	if len(unpublished) > 0 {
		// The publish re-triggers through the feed.
		persona.MarkWaiting(p, persona.WaitingForPlaybooks(unpublished))
		return ctrl.Result{}, nil
	}
	if evalCtx.Err() != nil && ctx.Err() == nil {
		// Stopped by the deadline: the profiles not evaluated read as errors,
		// so nothing of it may be applied.
		msg := persona.EvaluationTimeout(p, r.evaluationTimeout(), profiles)
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, v1alpha1.ReasonEvaluationTimeout, "Evaluate", "%s", msg)
		return ctrl.Result{RequeueAfter: refreshInterval(p)}, nil
	}
	if ctx.Err() != nil {
		return ctrl.Result{}, ctx.Err()
	}

	out := planMembership(slices, ev, now, sliceSize(p))
	written, err := r.write(ctx, p, slices, out.Plan)
	if err != nil {
		return ctrl.Result{}, err
	}
	mem = persona.Remember(mem, ev, mode == persona.ModeFull, key, gen, written, now)
	r.memory.Put(ownerOf(p), p.Generation, "", mem)
	change := out.Change
	persona.Record(p, persona.Outcome{
		Eval: ev, Change: change, Members: out.Members, Sample: out.Sample, Slices: len(written),
		Sources: freshness(sources), Now: now, Evaluation: evaluation,
	})
	r.announce(p, change.Counts(), ev, mode)
	// At the next change of membership by time alone, or the next full
	// evaluation that refreshes insights, if before the refresh.
	var fullDue time.Time
	if mode == persona.ModeChanged && len(mem.Insights) > 0 {
		fullDue = persona.FullDue(mem, persona.MinFullInterval)
	}
	return ctrl.Result{RequeueAfter: persona.RequeueAfter(ev, now, refreshInterval(p), fullDue), Priority: ptr.To(timedPriority)}, nil
}

// timedPriority is the work queue priority of a persona's timed
// re-evaluation (a time crossing, an insights refresh, the refresh
// interval): below the passes that data, spec and playbook changes enqueue
// (priority 0), so that with a few workers a change to a million-profile
// namespace is not queued behind every persona's timed full pass.
const timedPriority = -10

// membershipOutcome is the writes, entries and exits of a pass, and the
// members afterwards.
type membershipOutcome struct {
	membership.Outcome
	Sample []string
}

// planMembership plans the slice writes of an evaluation: a full one is
// diffed against every stored member (membership.Diff, PlanSlices); a
// change-driven one touches only the slices of the users it re-evaluated
// (membership.PlanChanges), reading the cached slices without copying them.
func planMembership(slices []v1alpha1.PersonaMembership, ev persona.Evaluation, now time.Time, size int) membershipOutcome {
	if ev.Matching == nil && ev.Verdicts != nil {
		stored := cachedSlices(slices)
		out := membership.PlanChanges(stored, ev.Verdicts, now, size)
		return membershipOutcome{Outcome: out, Sample: membership.Smallest(membership.IDsAfter(stored, out.Change), persona.SampleSize)}
	}
	existing := toSlices(slices)
	desired, change := membership.Diff(membership.Members(existing), ev.Matching, now)
	return membershipOutcome{
		Outcome: membership.Outcome{Plan: membership.PlanSlices(existing, desired, size), Change: change, Members: len(desired)},
		Sample:  membership.Smallest(maps.Keys(desired), persona.SampleSize),
	}
}

// cachedSlices reads PersonaMemberships as membership.Stored.
type cachedSlices []v1alpha1.PersonaMembership

func (c cachedSlices) Len() int          { return len(c) }
func (c cachedSlices) Name(i int) string { return c[i].Name }
func (c cachedSlices) Size(i int) int    { return len(c[i].Members) }
func (c cachedSlices) At(i, j int) membership.Member {
	m := &c[i].Members[j]
	return membership.Member{UserID: m.UserID, AccountID: m.AccountID, EnteredAt: m.EnteredAt.Time}
}

// DefaultEvaluationTimeout is the default of --max-evaluation-time.
const DefaultEvaluationTimeout = 2 * time.Minute

func (r *PersonaReconciler) evaluationTimeout() time.Duration {
	if r.EvaluationTimeout > 0 {
		return r.EvaluationTimeout
	}
	return DefaultEvaluationTimeout
}

// memoryKey identifies what an evaluation is valid for: the spec, the schema,
// the sources read, and a requested reconcile (which evaluates in full).
func memoryKey(p *v1alpha1.Persona, s rule.Schema, sources []string) string {
	return strings.Join([]string{schemaKey(s), strings.Join(sources, ","), p.Annotations[v1alpha1.ReconcileRequestAnnotation]}, "|")
}

// invalidRule records that the rule or an insight does not compile: Stalled
// for this generation, with a Warning Event; membership is unchanged.
func (r *PersonaReconciler) invalidRule(p *v1alpha1.Persona, err error) {
	p.Status.ObservedGeneration = p.Generation
	stall(r.Recorder, p, &p.Status.Conditions, persona.InvalidRule(err), "Evaluate", persona.Unchanged)
}

// ownSlices lists the persona's slices from the cache, read-only (the
// cache's own objects, not a copy of every member at each pass: a write
// deep-copies a slice before changing it). Only the slices this persona
// controls: one left by a deleted persona of the same name is ignored
// (garbage collection deletes it), never taken for this persona's
// membership nor written to. stale: the cache does not show our own writes
// yet.
func (r *PersonaReconciler) ownSlices(ctx context.Context, p *v1alpha1.Persona) (slices []v1alpha1.PersonaMembership, stale bool, err error) {
	var list v1alpha1.PersonaMembershipList
	if err := r.List(ctx, &list, client.InNamespace(p.Namespace), client.MatchingLabels{v1alpha1.PersonaLabel: p.Name},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil, false, err
	}
	slices = membership.Owned(p, list.Items)
	cached := membershipGenerations(slices)
	if r.writes.Stale(ownerOf(p), cached) {
		return nil, true, nil
	}
	r.writes.Settle(ownerOf(p), cached)
	return slices, false, nil
}

// sources returns the persona's in-memory selection (persona.SelectSources,
// over what the store has loaded) with the selected DataSources.
func (r *PersonaReconciler) sources(p *v1alpha1.Persona, all []v1alpha1.DataSource) ([]v1alpha1.DataSource, persona.Selection) {
	ns := r.Store.Namespace(p.Namespace)
	sel := persona.SelectSources(&p.Spec, p.Namespace, all, func(name string) bool {
		_, _, ok := ns.Loaded(name)
		return ok
	})
	return pick(all, sel.Sources), sel
}

// pick returns the DataSources named, in the order of names.
func pick(all []v1alpha1.DataSource, names []string) []v1alpha1.DataSource {
	selected := make([]v1alpha1.DataSource, 0, len(names))
	for _, name := range names {
		for _, ds := range all {
			if ds.Name == name {
				selected = append(selected, ds)
			}
		}
	}
	return selected
}

// sourcesNotLoaded records that the persona, evaluated in memory, reads
// DataSources never loaded into memory (spec.load None): Stalled with a
// Warning Event; membership is unchanged.
func (r *PersonaReconciler) sourcesNotLoaded(p *v1alpha1.Persona, msg string, evaluation v1alpha1.EvaluationStatus) {
	p.Status.ObservedGeneration = p.Generation
	if evaluation.Mode != "" {
		p.Status.Evaluation = &evaluation
		msg += " (" + evaluation.Reason + ")"
	}
	stall(r.Recorder, p, &p.Status.Conditions, &conditions.Stalled{Reason: v1alpha1.ReasonSourceNotLoaded, Message: msg},
		"Evaluate", persona.Unchanged)
}

// accounts is recorded members' account ids by user id.
func accounts(members map[string]membership.Member) map[string]string {
	out := make(map[string]string, len(members))
	for id, m := range members {
		out[id] = m.AccountID
	}
	return out
}

// playbooks lists the names of the namespace's Playbooks, those being deleted
// aside (their state is gone already or about to be).
func (r *PersonaReconciler) playbooks(ctx context.Context, namespace string) ([]string, error) {
	var list v1alpha1.PlaybookList
	if err := r.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	var names []string
	for _, pb := range list.Items {
		if pb.DeletionTimestamp.IsZero() {
			names = append(names, pb.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// compiled returns the persona's programs, compiled once per spec generation and
// schema: a schema change (a DataSource declares new attributes) recompiles, and
// a rule that no longer compiles reports InvalidRule instead of failing.
func (r *PersonaReconciler) compiled(p *v1alpha1.Persona, s rule.Schema) (*persona.Compiled, error) {
	key := schemaKey(s)
	if e, ok := r.compiledRules.Get(ownerOf(p), p.Generation, key); ok {
		return e.compiled, e.err
	}
	c, err := persona.Compile(&p.Spec, s)
	r.compiledRules.Put(ownerOf(p), p.Generation, key, compiledEntry{compiled: c, err: err})
	return c, err
}

func schemaKey(s rule.Schema) string {
	var parts []string
	for k, t := range s.User {
		parts = append(parts, "u."+k+":"+string(t))
	}
	for k, t := range s.Account {
		parts = append(parts, "a."+k+":"+string(t))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// write applies a slice plan in the order of its Steps (creates, updates by
// optimistic lock, deletes), recording each write in the tracker. It returns
// the persona's slices (name → generation) after the writes.
func (r *PersonaReconciler) write(ctx context.Context, p *v1alpha1.Persona, cached []v1alpha1.PersonaMembership,
	plan membership.Plan) (map[string]int64, error) {
	w := r.sliceWriter(p, cached)
	// The plan's order between phases is kept (creates, updates, deletes:
	// a member never in no slice); the creates of a first pass, hundreds of
	// slices of a thousand members, and the deletes run concurrently, each
	// request waiting on the API server and etcd rather than on this process.
	for _, phase := range plan.Phases() {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(phase.Concurrency(sliceWriters))
		for _, step := range phase.Steps {
			g.Go(func() error { return w.write(gctx, step) })
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	return w.written, nil
}

// sliceWriters is how many slice creates (or deletes) one pass sends at once.
const sliceWriters = 8

func (r *PersonaReconciler) createSlice(ctx context.Context, p *v1alpha1.Persona, members []membership.Member) (*v1alpha1.PersonaMembership, error) {
	obj := &v1alpha1.PersonaMembership{ObjectMeta: metav1.ObjectMeta{
		Namespace: p.Namespace, GenerateName: p.Name + "-", Labels: map[string]string{v1alpha1.PersonaLabel: p.Name},
	}, Persona: p.Name}
	if err := controllerutil.SetControllerReference(p, obj, r.Scheme()); err != nil {
		return nil, err
	}
	fill(obj, members)
	if err := r.Create(ctx, obj); err != nil {
		return nil, fmt.Errorf("creating a PersonaMembership: %w", err)
	}
	r.writes.Wrote(ownerOf(p), obj.Name, obj.Generation)
	return obj, nil
}

func (r *PersonaReconciler) deleteSlice(ctx context.Context, p *v1alpha1.Persona, obj *v1alpha1.PersonaMembership) error {
	err := r.Delete(ctx, obj, client.Preconditions{ResourceVersion: &obj.ResourceVersion})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting PersonaMembership %s: %w", obj.Name, err)
	}
	r.writes.Wrote(ownerOf(p), obj.Name, tracker.Deleted)
	return nil
}

func fill(obj *v1alpha1.PersonaMembership, members []membership.Member) {
	obj.Members = make([]v1alpha1.MembershipEntry, len(members))
	for i, m := range members {
		obj.Members[i] = v1alpha1.MembershipEntry{UserID: m.UserID, AccountID: m.AccountID, EnteredAt: metav1.NewTime(m.EnteredAt)}
	}
	obj.MemberCount = int32(len(members))
}

func toSlices(items []v1alpha1.PersonaMembership) []membership.Slice {
	out := make([]membership.Slice, len(items))
	for i, it := range items {
		s := membership.Slice{Name: it.Name, Members: make([]membership.Member, len(it.Members))}
		for j, m := range it.Members {
			s.Members[j] = membership.Member{UserID: m.UserID, AccountID: m.AccountID, EnteredAt: m.EnteredAt.Time}
		}
		out[i] = s
	}
	membership.SortSlices(out)
	return out
}

func freshness(sources []v1alpha1.DataSource) []v1alpha1.SourceFreshness {
	out := make([]v1alpha1.SourceFreshness, 0, len(sources))
	for _, ds := range sources {
		out = append(out, v1alpha1.SourceFreshness{
			Name:                   ds.Name,
			LastSuccessfulSyncTime: ds.Status.LastSuccessfulSyncTime,
			Stale:                  meta.IsStatusConditionTrue(ds.Status.Conditions, v1alpha1.StaleCondition),
		})
	}
	if len(out) > 32 {
		out = out[:32]
	}
	return out
}

// announce emits one aggregated Event and the metrics for a change.
func (r *PersonaReconciler) announce(p *v1alpha1.Persona, ch membership.Counts, ev persona.Evaluation, mode string) {
	observeEvaluation(p, ch, ev, mode)
	if ch.Entered+ch.Exited == 0 {
		return
	}
	r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, "MembershipChanged", "Evaluate",
		"%d entered, %d exited; %d members", ch.Entered, ch.Exited, p.Status.Members)
}

// mirrorStage keeps the stage label equal to spec.stage, so kubectl and
// Playbooks can select personas by stage.
func (r *PersonaReconciler) mirrorStage(ctx context.Context, p *v1alpha1.Persona) error {
	want := string(p.Spec.Stage)
	if p.Labels[v1alpha1.StageLabel] == want {
		return nil
	}
	patch := client.MergeFrom(p.DeepCopy())
	if want == "" {
		delete(p.Labels, v1alpha1.StageLabel)
	} else {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels[v1alpha1.StageLabel] = want
	}
	return r.Patch(ctx, p, patch)
}

// patchStatus writes status when it changed. An evaluation that changed nothing
// but its own time and duration is written at most once per refresh interval,
// so a no-op reconcile makes no API write.
func (r *PersonaReconciler) patchStatus(ctx context.Context, before, p *v1alpha1.Persona) error {
	if last := before.Status.LastEvaluationTime; last != nil && r.Clock.Since(last.Time) < refreshInterval(p) {
		a, b := before.Status.DeepCopy(), p.Status.DeepCopy()
		a.LastEvaluationTime, a.LastEvaluationDuration = nil, nil
		b.LastEvaluationTime, b.LastEvaluationDuration = nil, nil
		if equality.Semantic.DeepEqual(a, b) {
			return nil
		}
	}
	// Optimistic lock: counters such as totalEntered are read-modify-write.
	return patchStatus(ctx, r.Client, before, p, &before.Status, &p.Status, true)
}

func sliceSize(p *v1alpha1.Persona) int {
	if p.Spec.SliceSize <= 0 || p.Spec.SliceSize > v1alpha1.MaxMembersPerSlice {
		return v1alpha1.MaxMembersPerSlice
	}
	return int(p.Spec.SliceSize)
}

func refreshInterval(p *v1alpha1.Persona) time.Duration {
	if p.Spec.RefreshInterval == nil || p.Spec.RefreshInterval.Duration <= 0 {
		return 10 * time.Minute
	}
	return p.Spec.RefreshInterval.Duration
}

// SetupWithManager registers the controller. A Persona is re-evaluated when its
// spec changes, when any DataSource of its namespace changes (new data, new
// schema, staleness), when one of its slices is changed by someone else, and on
// its refresh interval.
func (r *PersonaReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Persona{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&v1alpha1.PersonaMembership{}).
		Watches(&v1alpha1.DataSource{}, handler.EnqueueRequestsFromMapFunc(r.personasInNamespace))
	if r.StoreEvents != nil {
		b = b.WatchesRawSource(source.Channel(r.StoreEvents, handler.EnqueueRequestsFromMapFunc(r.personasInNamespace)))
	}
	if r.Store != nil {
		b = b.WatchesRawSource(source.Func(r.watchPlaybookRuns))
	}
	workers := r.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	return b.WithOptions(controller.Options{MaxConcurrentReconciles: workers}).Named("persona").Complete(r)
}

// watchPlaybookRuns enqueues, whenever the Playbook controller publishes a
// change of user.playbooks in a namespace, the personas there that read it.
// The store's feed coalesces changes, so a burst of Job completions costs one
// evaluation per persona, not one per Job.
func (r *PersonaReconciler) watchPlaybookRuns(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	feed := r.Store.Subscribe()
	go func() {
		defer feed.Close()
		for {
			namespaces := feed.Next(ctx)
			if namespaces == nil {
				return
			}
			for _, ns := range namespaces {
				for _, req := range r.personasReadingPlaybooks(ctx, ns) {
					q.Add(req)
				}
			}
		}
	}()
	return nil
}

// personasReadingPlaybooks lists the namespace's personas that read (or may
// read) user.playbooks: the others would only evaluate to the same result.
func (r *PersonaReconciler) personasReadingPlaybooks(ctx context.Context, namespace string) []reconcile.Request {
	var list v1alpha1.PersonaList
	if err := r.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		logf.FromContext(ctx).Error(err, "listing Personas for a playbook state change")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		p := &list.Items[i]
		e, cached := r.compiledRules.Latest(ownerOf(p), p.Generation)
		if readsPlaybooks(e, cached) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
		}
	}
	return reqs
}

// readsPlaybooks decides from a persona's compiled programs whether a change
// of user.playbooks concerns it.
func readsPlaybooks(e compiledEntry, cached bool) bool {
	switch {
	case !cached:
		return true // not compiled for this spec yet: evaluating tells
	case e.err != nil:
		return false // an invalid rule waits for a spec or schema change
	default:
		return e.compiled.ReadsUser(attr.PlaybooksAttr)
	}
}

func (r *PersonaReconciler) personasInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.PersonaList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		logf.FromContext(ctx).Error(err, "listing Personas for a DataSource change")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, p := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
	}
	return reqs
}

func membershipGenerations(items []v1alpha1.PersonaMembership) map[string]int64 {
	out := make(map[string]int64, len(items))
	for _, it := range items {
		out[it.Name] = it.Generation
	}
	return out
}
