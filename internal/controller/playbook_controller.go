package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/identity"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/playbook"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/tracker"
)

// +kubebuilder:rbac:groups=personas.usersuccess.io,resources=playbookprogresses,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;patch

// DefaultJobCreateWorkers is how many Jobs a pass creates at once. A create
// costs a round trip of tens of milliseconds on a busy API server, so the
// launch rate is about workers / latency (measured on the local cluster: 16
// workers ≈ 80–110 Jobs/s, 48 ≈ 160 Jobs/s); the client's QPS limit
// (--kube-api-qps) still bounds the total.
const DefaultJobCreateWorkers = 48

// PlaybookReconciler launches a Job per user (or batch of users) and step for
// the users who enter (or exit) a persona, exactly once per entry:
//
//   - the decision to launch is recorded in the run ledger (PlaybookProgress
//     slices) before the Job is created (write-ahead);
//   - the Job's name is a hash of the playbook UID, step and entry, so any pass
//     that re-decides the same launch gets AlreadyExists, not a second Job;
//   - every Job carries a finalizer that is removed only once its outcome is in
//     the ledger, so a Job deleted by its TTL cannot look like one never created;
//   - a pass never acts on a ledger cache that lacks this manager's own writes.
type PlaybookReconciler struct {
	client.Client
	Store    *profile.Store
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
	// CreateWorkers is how many Jobs are created in parallel (default
	// DefaultJobCreateWorkers).
	CreateWorkers int
	// Identities gives the client that creates a playbook's Jobs and payload
	// Secrets as its ServiceAccount (default: the manager acts as itself
	// unless the spec names one).
	Identities *Identities

	ledger  tracker.Writes // ledger writes the cache may not show yet
	created tracker.Names  // Jobs this process created, not yet in the cache
	window  tracker.Window // recent launches, for maxLaunchesPerMinute
	books   tracker.Memo[book]
}

// book is a playbook's planning state (playbook.Book) and when it was last
// built from every slice.
type book struct {
	*playbook.Book
	built time.Time
}

// fullPassEvery is how often a playbook's Book is built again from every
// slice even when every pass could be incremental: a bound on how long any
// mistake in following changes could last.
const fullPassEvery = 10 * time.Minute

// forget drops what the reconciler keeps in memory for a deleted playbook.
func (r *PlaybookReconciler) forget(name types.NamespacedName) {
	r.ledger.Forget(name)
	r.created.Forget(name)
	r.window.Forget(name)
	r.books.Forget(name)
	forgetPlaybook(name.Namespace, name.Name)
}

// Reconcile runs one planning pass for a Playbook and applies it.
func (r *PlaybookReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pb v1alpha1.Playbook
	if err := r.Get(ctx, req.NamespacedName, &pb); err != nil {
		if apierrors.IsNotFound(err) {
			// Garbage collection is deleting the playbook's Jobs: let them go.
			r.forget(req.NamespacedName)
			r.unpublish(req.Namespace, req.Name)
			return ctrl.Result{}, r.releaseOrphans(ctx, req.Namespace, req.Name, "")
		}
		return ctrl.Result{}, err
	}
	if !pb.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName)
		r.unpublish(pb.Namespace, pb.Name)
		return ctrl.Result{}, nil
	}
	if err := r.releaseOrphans(ctx, pb.Namespace, pb.Name, pb.UID); err != nil {
		return ctrl.Result{}, err
	}
	before := pb.DeepCopy()
	result, err := r.reconcile(ctx, &pb)
	if perr := r.patchStatus(ctx, before, &pb); perr != nil && err == nil {
		err = perr
	}
	return result, err
}

func (r *PlaybookReconciler) reconcile(ctx context.Context, pb *v1alpha1.Playbook) (ctrl.Result, error) {
	act, err := r.actAs(pb)
	var personas []v1alpha1.Persona
	if err == nil {
		personas, err = r.personas(ctx, pb)
	}
	if s, ok := conditions.AsStalled(err); ok {
		// A broken trigger stops the playbook, not the personas that read
		// its runs (they wait until it publishes).
		stall(r.Recorder, pb, &pb.Status.Conditions, s, "Plan", "no Jobs are launched")
		_, perr := r.publishLedger(ctx, pb)
		return ctrl.Result{}, perr
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	pb.Status.Personas = int32(len(personas))
	if len(personas) == 0 {
		msg := personaNotFound(pb)
		conditions.Remove(&pb.Status.Conditions, v1alpha1.StalledCondition)
		playbook.MarkReady(pb, metav1.ConditionFalse, v1alpha1.ReasonPersonaNotFound, msg)
		warn(r.Recorder, pb, v1alpha1.ReasonPersonaNotFound, "Plan", msg)
		// A Persona event re-triggers; only overdue steps move by time.
		wake, err := r.publishLedger(ctx, pb)
		return r.wakeAt(wake, r.Clock.Now()), err
	}
	members, err := r.memberSlices(ctx, pb, personas)
	if err != nil {
		return ctrl.Result{}, err
	}
	var progress v1alpha1.PlaybookProgressList
	// Read-only (the ledger writes deep-copy a slice before changing it): no
	// copy of every run at each pass.
	if err := r.List(ctx, &progress, client.InNamespace(pb.Namespace), client.MatchingLabels{v1alpha1.PlaybookLabel: pb.Name},
		client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, err
	}
	owned := membership.Owned(pb, progress.Items)
	if r.ledger.Stale(ownerOf(pb), progressGenerations(owned)) {
		return ctrl.Result{RequeueAfter: time.Second}, nil // wait for our own ledger writes to reach the cache
	}
	r.ledger.Settle(ownerOf(pb), progressGenerations(owned))
	jobs, err := r.jobs(ctx, pb)
	if err != nil {
		return ctrl.Result{}, err
	}

	now := r.Clock.Now()
	paused, pauseReason := r.paused(pb, personas)
	// The API server rejected a Job of this spec: creating one again cannot
	// succeed until the spec changes, so nothing new is decided and recorded
	// runs wait for their Jobs. Outcomes are still recorded.
	blocked := conditions.StalledBy(pb.Status.Conditions, pb.Generation, v1alpha1.ReasonJobCreateFailed)
	b := r.book(pb, personas, members, runSlices(owned), now)
	plan := b.Plan(jobs, playbook.Limits{Paused: paused || blocked, MaxConcurrent: int(pb.Spec.MaxConcurrentJobs), Budget: r.budget(pb, now)}, now)
	r.skipCreated(pb, &plan, jobs)
	if blocked {
		plan.Launch = nil
	}
	if err := r.writeLedger(ctx, pb, owned, plan, b.Holders(plan.Changed)); err != nil {
		return ctrl.Result{}, err
	}
	launched, createErr := r.createJobs(ctx, pb, act, plan.Launch)
	// Published once the ledger holds it: user.playbooks never shows a run the
	// ledger could lose. After the Jobs, which need not wait for the store's
	// write lock. A pass that changed no State publishes nothing (the store
	// would compare every user's to find that out).
	if b.Unpublished() {
		r.publish(pb, plan.States)
		b.MarkPublished()
	}
	r.recordLaunches(pb, launched, now)
	if err := r.release(ctx, pb, act, plan.Release); err != nil {
		return ctrl.Result{}, errors.Join(createErr, err)
	}
	if !blocked && !conditions.IsStalled(createErr) {
		// (A refused create keeps its condition, so stall does not repeat its Event.)
		conditions.Remove(&pb.Status.Conditions, v1alpha1.StalledCondition)
	}
	playbook.Record(pb, plan, paused, pauseReason)
	observePlaybook(pb, plan.Counts, launched)
	if launched > 0 {
		r.Recorder.Eventf(pb, nil, corev1.EventTypeNormal, "Launched", "Launch", "%s", playbook.LaunchMessage(launched, plan.Counts))
	}
	switch {
	case createErr != nil:
		return ctrl.Result{}, r.jobCreateFailed(pb, createErr)
	case blocked:
		c := meta.FindStatusCondition(pb.Status.Conditions, v1alpha1.StalledCondition)
		playbook.MarkReady(pb, metav1.ConditionFalse, c.Reason, c.Message+"; "+jobsNotLaunched)
	}
	return r.requeue(pb, plan, paused, now), nil
}

const jobsNotLaunched = "no Jobs are launched until the spec changes"

// jobCreateFailed reports Jobs the API server would not create. A rejected
// template (Invalid, BadRequest) is the user's to fix: the playbook is Stalled
// for this generation and launches nothing until the spec changes, instead of
// retrying forever. Anything else (a quota, a webhook down) is retried with
// the work queue's backoff. Either way Ready says why, with a Warning Event.
func (r *PlaybookReconciler) jobCreateFailed(pb *v1alpha1.Playbook, err error) error {
	if s, ok := conditions.AsStalled(err); ok {
		// The acting identity may not create the Job or its payload: a grant
		// fixes it, not a spec change, so the backoff retries (recorded runs
		// wait for their Jobs; nothing is created as the manager instead).
		stall(r.Recorder, pb, &pb.Status.Conditions, s, "Launch", "recorded runs wait for their Jobs; retrying with backoff")
		return err
	}
	msg := conditions.Truncate(err.Error(), conditions.MaxMessageBytes/2)
	if permanentCreateError(err) {
		stall(r.Recorder, pb, &pb.Status.Conditions, &conditions.Stalled{Reason: v1alpha1.ReasonJobCreateFailed, Message: msg}, "Launch", jobsNotLaunched)
		return nil
	}
	playbook.MarkReady(pb, metav1.ConditionFalse, v1alpha1.ReasonJobCreateFailed, msg+"; retrying with backoff")
	warn(r.Recorder, pb, v1alpha1.ReasonJobCreateFailed, "Launch", msg)
	return err
}

// permanentCreateError: a create error that repeating the same request cannot fix.
func permanentCreateError(err error) bool {
	var agg interface{ Unwrap() []error }
	errs := []error{err}
	if errors.As(err, &agg) {
		errs = agg.Unwrap()
	}
	for _, e := range errs {
		if apierrors.IsInvalid(e) || apierrors.IsBadRequest(e) {
			return true
		}
	}
	return false
}

// personaNotFound says which persona the trigger looks for.
func personaNotFound(pb *v1alpha1.Playbook) string {
	if ref := pb.Spec.PersonaRef; ref != nil {
		return fmt.Sprintf("persona %q (spec.personaRef) not found in namespace %q", ref.Name, pb.Namespace)
	}
	if pb.Spec.PersonaSelector != nil {
		return fmt.Sprintf("no persona in namespace %q matches spec.personaSelector", pb.Namespace)
	}
	return fmt.Sprintf("no persona in namespace %q has stage %q", pb.Namespace, pb.Spec.Stage)
}

// personas resolves the trigger to the Personas of the namespace it selects
// (playbook.TriggerOf, as the preview does), sorted by name.
func (r *PlaybookReconciler) personas(ctx context.Context, pb *v1alpha1.Playbook) ([]v1alpha1.Persona, error) {
	trigger, err := playbook.TriggerOf(&pb.Spec)
	if err != nil {
		return nil, conditions.Stalledf(v1alpha1.ReasonInvalidSpec, "%v", err)
	}
	var list v1alpha1.PersonaList
	if err := r.List(ctx, &list, client.InNamespace(pb.Namespace)); err != nil {
		return nil, err
	}
	var out []v1alpha1.Persona
	for _, p := range list.Items {
		if trigger.Selects(playbook.Target{Name: p.Name, Labels: p.Labels}) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// memberSlices reads the personas' membership slices, the durable record of
// who is a member since when, without copying their members: the Book keeps
// the cache's arrays (read only) and reads the members of changed slices.
func (r *PlaybookReconciler) memberSlices(ctx context.Context, pb *v1alpha1.Playbook, personas []v1alpha1.Persona) ([]playbook.MemberSlice, error) {
	var out []playbook.MemberSlice
	for _, p := range personas {
		var slices v1alpha1.PersonaMembershipList
		if err := r.List(ctx, &slices, client.InNamespace(pb.Namespace), client.MatchingLabels{v1alpha1.PersonaLabel: p.Name},
			client.UnsafeDisableDeepCopy); err != nil { // read-only
			return nil, err
		}
		for _, s := range membership.Owned(&p, slices.Items) {
			out = append(out, playbook.MemberSlice{Persona: p.Name, Name: s.Name, Version: s.ResourceVersion, Members: s.Members})
		}
	}
	return out, nil
}

// runSlices are the ledger's slices as a Book reads them.
func runSlices(owned []v1alpha1.PlaybookProgress) []playbook.RunSlice {
	out := make([]playbook.RunSlice, len(owned))
	for i, s := range owned {
		out[i] = playbook.RunSlice{Name: s.Name, Version: s.ResourceVersion, Runs: s.Runs}
	}
	return out
}

// book brings the playbook's Book up to date with the slices: incrementally
// when it was built for this spec and these personas, else (the first pass
// after a start, a spec or trigger change, too many changes at once, or
// every fullPassEvery) from every slice.
func (r *PlaybookReconciler) book(pb *v1alpha1.Playbook, personas []v1alpha1.Persona, members []playbook.MemberSlice,
	ledger []playbook.RunSlice, now time.Time) *playbook.Book {
	names := make([]string, len(personas))
	for i, p := range personas {
		names[i] = p.Name + "/" + string(p.UID)
	}
	key := strings.Join(names, ",")
	b, ok := r.books.Get(ownerOf(pb), pb.Generation, key)
	if ok && now.Sub(b.built) < fullPassEvery && b.Sync(members, ledger) {
		playbookPasses.WithLabelValues(pb.Namespace, pb.Name, "incremental").Inc()
		return b.Book
	}
	b = book{Book: playbook.NewBook(playbook.SpecOf(pb), members, ledger), built: now}
	r.books.Put(ownerOf(pb), pb.Generation, key, b)
	playbookPasses.WithLabelValues(pb.Namespace, pb.Name, "full").Inc()
	return b.Book
}

// jobs lists the playbook's Jobs as the planner sees them.
func (r *PlaybookReconciler) jobs(ctx context.Context, pb *v1alpha1.Playbook) (map[string]playbook.Job, error) {
	var list batchv1.JobList
	if err := r.List(ctx, &list, client.InNamespace(pb.Namespace), client.MatchingLabels{v1alpha1.PlaybookUIDLabel: string(pb.UID)},
		client.UnsafeDisableDeepCopy); err != nil { // read-only: no copy of every Job at each pass
		return nil, err
	}
	out := make(map[string]playbook.Job, len(list.Items))
	for i := range list.Items {
		j := &list.Items[i]
		out[j.Name] = playbook.Job{
			Name: j.Name, Succeeded: jobCondition(j, batchv1.JobComplete), Failed: jobCondition(j, batchv1.JobFailed),
			Deleting: !j.DeletionTimestamp.IsZero(), Held: controllerutil.ContainsFinalizer(j, v1alpha1.RunFinalizer),
		}
	}
	return out, nil
}

func jobCondition(j *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// paused reports whether new launches wait, and why.
func (r *PlaybookReconciler) paused(pb *v1alpha1.Playbook, personas []v1alpha1.Persona) (bool, string) {
	if pb.Spec.Suspend {
		return true, v1alpha1.ReasonSuspended
	}
	for _, p := range personas {
		if meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.StaleCondition) {
			return true, v1alpha1.ReasonDataStale
		}
	}
	return false, ""
}

// budget is how many Jobs maxLaunchesPerMinute still allows in the current
// minute. The window lives in memory: after a restart the first minute may
// launch up to one more minute's worth.
func (r *PlaybookReconciler) budget(pb *v1alpha1.Playbook, now time.Time) int {
	return r.window.Budget(ownerOf(pb), int(pb.Spec.MaxLaunchesPerMinute), now)
}

func (r *PlaybookReconciler) recordLaunches(pb *v1alpha1.Playbook, n int, now time.Time) {
	if n == 0 {
		return
	}
	r.window.Record(ownerOf(pb), n, now)
	t := metav1.NewTime(now)
	pb.Status.LastLaunchTime = &t
}

// skipCreated drops re-creations of Jobs this process created that the cache
// does not show yet: they exist (our finalizer keeps them until recorded), so
// creating them again would only cost an AlreadyExists round trip.
func (r *PlaybookReconciler) skipCreated(pb *v1alpha1.Playbook, plan *playbook.Plan, cached map[string]playbook.Job) {
	created := r.created.Pending(ownerOf(pb), func(name string) bool {
		_, ok := cached[name]
		return ok
	})
	kept := plan.Launch[:0]
	for _, l := range plan.Launch {
		if l.New || !created[l.Job] {
			kept = append(kept, l)
		}
	}
	plan.Launch = kept
}

// writeLedger records the pass's decisions before any Job is created. holders
// names the slice holding each changed user's record (Book.Holders).
func (r *PlaybookReconciler) writeLedger(ctx context.Context, pb *v1alpha1.Playbook, cached []v1alpha1.PlaybookProgress,
	plan playbook.Plan, holders map[string]string) error {
	if len(plan.Changed) == 0 {
		return nil
	}
	lp := playbook.PlanLedgerAt(playbook.LedgerSlices(cached), plan.Changed, v1alpha1.MaxRunsPerSlice, holders)
	byName := map[string]*v1alpha1.PlaybookProgress{}
	for i := range cached {
		byName[cached[i].Name] = &cached[i]
	}
	for _, s := range lp.Update {
		obj := byName[s.Name].DeepCopy()
		obj.Runs, obj.RunCount = s.Runs, int32(len(s.Runs))
		if err := r.Update(ctx, obj); err != nil {
			return fmt.Errorf("updating PlaybookProgress %s: %w", s.Name, err)
		}
		r.ledger.Wrote(ownerOf(pb), obj.Name, obj.Generation)
	}
	for _, runs := range lp.Create {
		name := playbook.LedgerName(pb.Name, func(n string) bool { return byName[n] != nil })
		obj := &v1alpha1.PlaybookProgress{ObjectMeta: metav1.ObjectMeta{
			Namespace: pb.Namespace, Name: name, Labels: map[string]string{v1alpha1.PlaybookLabel: pb.Name},
		}, Playbook: pb.Name, Runs: runs, RunCount: int32(len(runs))}
		if err := controllerutil.SetControllerReference(pb, obj, r.Scheme()); err != nil {
			return err
		}
		if err := r.Create(ctx, obj); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// An earlier create whose response was lost, or a slice the
				// cache does not show yet: plan again once it does.
				return fmt.Errorf("PlaybookProgress %s exists but is not in the cache yet: retrying", name)
			}
			return fmt.Errorf("creating PlaybookProgress %s: %w", name, err)
		}
		byName[name] = obj
		r.ledger.Wrote(ownerOf(pb), obj.Name, obj.Generation)
	}
	return nil
}

// actor is whom a playbook's Jobs are created as, and the client acting so.
type actor struct {
	id     identity.Identity
	client client.Client
}

// actAs resolves the playbook's identity (identity.Policy) and checks that no
// step's pod runs as a ServiceAccount that identity may not hand out.
func (r *PlaybookReconciler) actAs(pb *v1alpha1.Playbook) (actor, error) {
	id, c, err := r.Identities.Resolve(pb.Namespace, pb.Spec.ServiceAccountName)
	if err != nil {
		return actor{}, err
	}
	for i, st := range pb.Spec.Steps {
		pod := st.JobTemplate.Spec.Template.Spec
		field := fmt.Sprintf("spec.steps[%d].jobTemplate.spec.template.spec", i)
		if err := identity.PodServiceAccount(id, pod.ServiceAccountName, field+".serviceAccountName"); err != nil {
			return actor{}, err
		}
		if err := identity.PodServiceAccount(id, pod.DeprecatedServiceAccount, field+".serviceAccount"); err != nil {
			return actor{}, err
		}
	}
	if c == nil {
		c = r.Client
	}
	return actor{id: id, client: c}, nil
}

// createJobs creates the launches' payload Secrets and Jobs in parallel, as
// the playbook's identity. AlreadyExists is success: the name is the lock, and
// a Job of that name carries our playbook's UID in its hash; its payload
// Secret, named alike, is created first, so a retry after a crash between the
// two finds it and goes on. It returns how many Jobs it created.
func (r *PlaybookReconciler) createJobs(ctx context.Context, pb *v1alpha1.Playbook, act actor, launches []playbook.Launch) (int, error) {
	if len(launches) == 0 {
		return 0, nil
	}
	profiles := r.profiles(pb, launches)
	work := make(chan playbook.Launch)
	var mu sync.Mutex
	var denied atomic.Bool
	var errs []error
	created := 0
	var wg sync.WaitGroup
	for range min(max(r.CreateWorkers, 1), len(launches)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range work {
				if denied.Load() {
					continue // the identity was refused: the others would be too
				}
				job, payload := playbook.BuildJob(pb, l, profiles)
				err := r.createJob(ctx, act, job, payload)
				mu.Lock()
				switch {
				case err == nil:
					created++
					r.created.Add(ownerOf(pb), l.Job)
				case apierrors.IsAlreadyExists(err):
					r.created.Add(ownerOf(pb), l.Job)
				default:
					errs = append(errs, fmt.Errorf("creating Job %s: %w", l.Job, err))
					denied.Store(denied.Load() || conditions.IsStalled(err))
				}
				mu.Unlock()
			}
		}()
	}
	for _, l := range launches {
		work <- l
	}
	close(work)
	wg.Wait()
	return created, errors.Join(errs...)
}

// createJob creates one launch's payload Secret (if any) and Job. A refusal
// becomes the Stalled error naming the identity and what it may not do.
func (r *PlaybookReconciler) createJob(ctx context.Context, act actor, job *batchv1.Job, payload *corev1.Secret) error {
	if payload != nil {
		if err := act.client.Create(ctx, payload); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("payload Secret: %w", identity.Denied(err, act.id, "create", "secrets", ""))
		}
	}
	if err := act.client.Create(ctx, job); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return err
		}
		return identity.Denied(err, act.id, "create", "jobs", "")
	}
	return nil
}

// profiles snapshots the launched users' profiles as plain JSON values, in one
// read of the store, for the Jobs' payload Secrets.
func (r *PlaybookReconciler) profiles(pb *v1alpha1.Playbook, launches []playbook.Launch) playbook.Profile {
	if r.Store == nil {
		return nil
	}
	out := map[string]map[string]any{}
	r.Store.Namespace(pb.Namespace).Read(nil, func(v *profile.View) {
		s := v.Schema()
		for _, l := range launches {
			for _, run := range l.Runs {
				if u, ok := v.User(run.UserID); ok {
					out[run.UserID] = plainProfile(u, s)
				}
			}
		}
	})
	return func(id string) map[string]any { return out[id] }
}

func plainProfile(u profile.User, s profile.Schema) map[string]any {
	user := map[string]any{}
	for name := range s.User {
		if v, ok := u.Get(name); ok {
			user[name] = attr.JSON(v)
		}
	}
	out := map[string]any{"user": user}
	if a, ok := u.Account(); ok {
		account := map[string]any{}
		for name := range s.Account {
			if v, ok := a.Get(name); ok {
				account[name] = attr.JSON(v)
			}
		}
		out["account"] = account
	}
	return out
}

// release removes our finalizer from Jobs being deleted whose outcome is
// recorded, after deleting their payload Secrets (as the playbook's
// identity): the payload goes with its Job, before the finalizer that tells
// this controller the Job is not done with. A payload the identity may not
// delete stays until the playbook is deleted (it owns it) and a Warning says
// so; the Job is released all the same.
func (r *PlaybookReconciler) release(ctx context.Context, pb *v1alpha1.Playbook, act actor, names []string) error {
	var held []*batchv1.Job
	var payloads []string
	for _, name := range names {
		j := &batchv1.Job{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: pb.Namespace, Name: name}, j); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return err
		}
		if !controllerutil.ContainsFinalizer(j, v1alpha1.RunFinalizer) {
			continue
		}
		if hasPayload(j) {
			payloads = append(payloads, j.Name)
		}
		held = append(held, j)
	}
	denied := r.deletePayloads(ctx, pb, act, payloads)
	if denied != nil && !conditions.IsStalled(denied) {
		return denied
	}
	for _, j := range held {
		if err := r.unhold(ctx, j); err != nil {
			return err
		}
	}
	if denied != nil {
		warn(r.Recorder, pb, identity.ReasonAccessDenied, "Release", denied.Error()+"; finished Jobs' payload Secrets stay until the playbook is deleted")
	}
	return nil
}

// payloadBatch is how many payload Secrets one delete request names (the
// label selector travels in the URL).
const payloadBatch = 100

// deletePayloads deletes the payload Secrets of the named Jobs, a batch per
// request (a delete of the collection by label). A tenant Role that grants
// delete but not deletecollection (written before) gets one delete per
// Secret. The identity's refusal is returned as a Stalled error.
func (r *PlaybookReconciler) deletePayloads(ctx context.Context, pb *v1alpha1.Playbook, act actor, names []string) error {
	for len(names) > 0 {
		batch := names[:min(payloadBatch, len(names))]
		names = names[len(batch):]
		sel, err := labels.NewRequirement(playbook.PayloadJobLabel, selection.In, batch)
		if err != nil {
			return err
		}
		own, err := labels.NewRequirement(v1alpha1.PlaybookLabel, selection.Equals, []string{pb.Name})
		if err != nil {
			return err
		}
		err = act.client.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(pb.Namespace),
			client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*sel, *own)})
		if apierrors.IsForbidden(err) {
			err = deleteEach(ctx, act, pb.Namespace, batch)
		}
		if err != nil {
			if apierrors.IsForbidden(err) {
				return identity.Denied(err, act.id, "delete", "secrets", "")
			}
			return fmt.Errorf("deleting the payloads of finished Jobs: %w", err)
		}
	}
	return nil
}

// deleteEach deletes payload Secrets one request each.
func deleteEach(ctx context.Context, act actor, namespace string, names []string) error {
	for _, name := range names {
		err := act.client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// hasPayload reports whether a Job mounts its payload Secret (BuildJob).
func hasPayload(j *batchv1.Job) bool {
	for _, v := range j.Spec.Template.Spec.Volumes {
		if v.Name == playbook.PayloadVolume && v.Secret != nil && v.Secret.SecretName == j.Name {
			return true
		}
	}
	return false
}

func (r *PlaybookReconciler) unhold(ctx context.Context, j *batchv1.Job) error {
	if !controllerutil.ContainsFinalizer(j, v1alpha1.RunFinalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(j.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(j, v1alpha1.RunFinalizer)
	if err := r.Patch(ctx, j, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("releasing Job %s: %w", j.Name, err)
	}
	return nil
}

// releaseOrphans lets go of held Jobs of a deleted (or re-created) playbook of
// this name: their ledger is gone with their owner, nothing waits for them.
func (r *PlaybookReconciler) releaseOrphans(ctx context.Context, namespace, name string, current types.UID) error {
	var list batchv1.JobList
	// Read-only (a Job to release is copied first): every pass lists them.
	if err := r.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{v1alpha1.PlaybookLabel: name},
		client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	for i := range list.Items {
		j := &list.Items[i]
		if j.Labels[v1alpha1.PlaybookUIDLabel] == string(current) || j.DeletionTimestamp.IsZero() {
			continue
		}
		if err := r.unhold(ctx, j.DeepCopy()); err != nil {
			return err
		}
	}
	return nil
}

// publish puts the playbook's run states into the profile store as its part of
// user.playbooks. The store ignores a publish that changes nothing, so a no-op
// pass re-evaluates no persona.
func (r *PlaybookReconciler) publish(pb *v1alpha1.Playbook, states map[string]playbook.State) {
	if r.Store == nil {
		return
	}
	out := make(map[string]profile.PlaybookState, len(states))
	for u, st := range states {
		out[u] = profile.PlaybookState{Phase: string(st.Phase), Step: st.Step, Overdue: st.Overdue, DueAt: st.DueAt}
	}
	r.Store.Namespace(pb.Namespace).PublishPlaybook(pb.Name, out)
}

// publishLedger publishes the run states the ledger records, for a pass that
// cannot plan (no persona matches the trigger, or the trigger is invalid): the
// runs still exist and personas reading them must not wait forever. It
// returns when the next recorded step becomes overdue.
func (r *PlaybookReconciler) publishLedger(ctx context.Context, pb *v1alpha1.Playbook) (time.Time, error) {
	var progress v1alpha1.PlaybookProgressList
	if err := r.List(ctx, &progress, client.InNamespace(pb.Namespace), client.MatchingLabels{v1alpha1.PlaybookLabel: pb.Name},
		client.UnsafeDisableDeepCopy); err != nil { // read-only
		return time.Time{}, err
	}
	runs := playbook.Runs(playbook.LedgerSlices(membership.Owned(pb, progress.Items)))
	states, wake := playbook.LedgerStates(playbook.SpecOf(pb), runs, r.Clock.Now())
	r.publish(pb, states)
	return wake, nil
}

// unpublish drops a deleted playbook's part of user.playbooks.
func (r *PlaybookReconciler) unpublish(namespace, name string) {
	if r.Store != nil {
		r.Store.Namespace(namespace).RemovePlaybook(name)
	}
}

// wakeAt requeues at t (zero: no requeue), at least a second from now.
func (r *PlaybookReconciler) wakeAt(t, now time.Time) ctrl.Result {
	if t.IsZero() {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: max(t.Sub(now), time.Second)}
}

// requeue asks to come back when time alone changes something: a launch slot
// of the rate limit frees up, a step becomes overdue, a cooldown ends. Job and
// membership changes arrive as watch events.
func (r *PlaybookReconciler) requeue(pb *v1alpha1.Playbook, plan playbook.Plan, paused bool, now time.Time) ctrl.Result {
	var after time.Duration
	if !plan.Wake.IsZero() {
		after = plan.Wake.Sub(now)
	}
	if plan.Counts.Pending > 0 && !paused && plan.Counts.RunningJobs < int(pb.Spec.MaxConcurrentJobs) {
		// Blocked by the rate limit only: retry when the oldest launch leaves the window.
		if free := r.window.NextFree(ownerOf(pb)); !free.IsZero() {
			if d := free.Sub(now); after == 0 || d < after {
				after = d
			}
		}
	}
	if after > 0 && after < time.Second {
		after = time.Second
	}
	return ctrl.Result{RequeueAfter: after}
}

// patchStatus writes status when it changed; every field is recomputed each
// pass.
func (r *PlaybookReconciler) patchStatus(ctx context.Context, before, pb *v1alpha1.Playbook) error {
	pb.Status.ObservedGeneration = pb.Generation
	return patchStatus(ctx, r.Client, before, pb, &before.Status, &pb.Status, false)
}

func progressGenerations(items []v1alpha1.PlaybookProgress) map[string]int64 {
	out := make(map[string]int64, len(items))
	for _, it := range items {
		out[it.Name] = it.Generation
	}
	return out
}

// SetupWithManager registers the controller. A Playbook is reconciled when its
// spec changes, when one of its Jobs finishes or is being deleted, when a
// persona it may watch changes (labels, staleness) or its membership slices
// change, and when its ledger is changed by someone else.
func (r *PlaybookReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.CreateWorkers == 0 {
		r.CreateWorkers = DefaultJobCreateWorkers
	}
	if r.Identities == nil {
		r.Identities = NewIdentities(mgr, identity.Policy{})
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Playbook{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&v1alpha1.PlaybookProgress{}).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(jobPlaybook), builder.WithPredicates(jobOutcomeChanged{})).
		Watches(&v1alpha1.Persona{}, handler.EnqueueRequestsFromMapFunc(r.playbooksFor), builder.WithPredicates(personaTriggerChanged{})).
		Watches(&v1alpha1.PersonaMembership{}, handler.EnqueueRequestsFromMapFunc(r.playbooksFor)).
		Named("playbook").Complete(r)
}

// jobPlaybook maps a Job to its playbook by label rather than owner reference,
// so a Job whose playbook is gone still reaches a reconcile that releases it.
func jobPlaybook(_ context.Context, o client.Object) []reconcile.Request {
	name, ok := o.GetLabels()[v1alpha1.PlaybookLabel]
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// jobOutcomeChanged passes Job events a playbook acts on: creation (the cache
// caught up), completion or failure, and deletion requests.
type jobOutcomeChanged struct{ predicate.Funcs }

func (jobOutcomeChanged) Create(event.CreateEvent) bool { return true }
func (jobOutcomeChanged) Delete(event.DeleteEvent) bool { return true }
func (jobOutcomeChanged) Update(e event.UpdateEvent) bool {
	o, okOld := e.ObjectOld.(*batchv1.Job)
	n, okNew := e.ObjectNew.(*batchv1.Job)
	if !okOld || !okNew {
		return true
	}
	return o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero() ||
		jobCondition(o, batchv1.JobComplete) != jobCondition(n, batchv1.JobComplete) ||
		jobCondition(o, batchv1.JobFailed) != jobCondition(n, batchv1.JobFailed)
}

// personaTriggerChanged passes the Persona events a playbook acts on: a
// persona that comes or goes, a label change (the trigger selects by name and
// labels, the stage label included) and a change of its Stale condition (which
// pauses launches). A Persona's status is written after most evaluations; the
// members it changed reach the playbook through the slices' own events.
type personaTriggerChanged struct{ predicate.Funcs }

func (personaTriggerChanged) Create(event.CreateEvent) bool { return true }
func (personaTriggerChanged) Delete(event.DeleteEvent) bool { return true }
func (personaTriggerChanged) Update(e event.UpdateEvent) bool {
	o, okOld := e.ObjectOld.(*v1alpha1.Persona)
	n, okNew := e.ObjectNew.(*v1alpha1.Persona)
	if !okOld || !okNew {
		return true
	}
	return !maps.Equal(o.Labels, n.Labels) ||
		meta.IsStatusConditionTrue(o.Status.Conditions, v1alpha1.StaleCondition) !=
			meta.IsStatusConditionTrue(n.Status.Conditions, v1alpha1.StaleCondition)
}

// playbooksFor maps a Persona or membership slice to the playbooks of its
// namespace whose trigger may select that persona.
func (r *PlaybookReconciler) playbooksFor(ctx context.Context, o client.Object) []reconcile.Request {
	persona := o.GetName()
	if s, ok := o.(*v1alpha1.PersonaMembership); ok {
		persona = s.Persona
	}
	var list v1alpha1.PlaybookList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil { // read-only
		logf.FromContext(ctx).Error(err, "listing Playbooks for a persona change")
		return nil
	}
	var reqs []reconcile.Request
	for _, pb := range list.Items {
		if ref := pb.Spec.PersonaRef; ref != nil && ref.Name != persona {
			continue
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pb.Namespace, Name: pb.Name}})
	}
	return reqs
}
