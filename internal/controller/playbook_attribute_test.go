package controller

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/cel-go/common/types/ref"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/persona"
	"github.com/usersuccess/persona-operator/internal/playbook"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// The user.playbooks specs: the Playbook controller publishes its runs into the
// profile store and a Persona rule reads them. The trigger persona is
// suspended, so its membership is written by hand (setMembers) as in the
// Playbook specs, while the persona under test is evaluated for real over a
// DataSource.

const overdueRule = `has(user.playbooks) && "onboard" in user.playbooks && user.playbooks["onboard"].overdue`

// pokePlaybook makes the Playbook controller reconcile now. The fake clock
// moves the controller's idea of time, not the work queue's delays, so a
// requeue at the due time does not fire by itself in a spec.
func pokePlaybook(ns, value string) {
	GinkgoHelper()
	pb := fetchPlaybook(ns)
	patch := client.MergeFrom(pb.DeepCopy())
	if pb.Annotations == nil {
		pb.Annotations = map[string]string{}
	}
	pb.Annotations["test/poke"] = value
	Expect(k8sClient.Patch(ctx, pb, patch)).To(Succeed())
}

// finishUserStep finishes a user's unfinished Job of a step.
func finishUserStep(ns, user, step string, succeeded bool) {
	GinkgoHelper()
	for _, j := range playbookJobs(ns) {
		if j.Annotations[playbook.UserAnnotation] == user && j.Labels[v1alpha1.StepLabel] == step && len(j.Status.Conditions) == 0 {
			finishJob(&j, succeeded)
			return
		}
	}
	Fail(fmt.Sprintf("no unfinished %s Job for %s", step, user))
}

// userPlaybooks reads a user's playbooks attribute from a store, as plain values.
func userPlaybooks(s *profile.Store, ns, user string) any {
	GinkgoHelper()
	var out any
	s.Namespace(ns).Read(nil, func(v *profile.View) {
		u, ok := v.User(user)
		Expect(ok).To(BeTrue(), "no profile for %s", user)
		val, ok := u.Get(attr.PlaybooksAttr)
		if !ok {
			return
		}
		var err error
		out, err = attr.FromCEL(val.(ref.Val))
		Expect(err).NotTo(HaveOccurred())
	})
	return out
}

// overdueSetup: users u1..u5, a suspended "stalled" trigger persona, the
// "at-risk" persona reading user.playbooks, and a playbook whose first step is
// due an hour after entry. u1 and u2 enter; u2's first step succeeds in time,
// u1's does not: two hours later u1 is overdue and in at-risk.
func overdueSetup() (ns string, pb *v1alpha1.Playbook) {
	GinkgoHelper()
	ns = newNamespace()
	Expect(k8sClient.Create(ctx, personaUsers(ns, personaCSV))).To(Succeed())
	trigger := newPersona(ns, "stalled", "true")
	trigger.Spec.Suspend = true
	Expect(k8sClient.Create(ctx, trigger)).To(Succeed())
	Expect(k8sClient.Create(ctx, newPersona(ns, "at-risk", overdueRule))).To(Succeed())
	pb = newPlaybook(ns, "stalled", func(s *v1alpha1.PlaybookSpec) {
		s.Steps[0].DueAfter = &metav1.Duration{Duration: time.Hour}
		s.Steps[1].DueAfter = &metav1.Duration{Duration: 100 * time.Hour}
	})
	playbookClock.SetTime(after(pb))
	setMembers(fetchPersona(ns, "stalled"), after(pb), "u1", "u2")
	Eventually(func() map[string]int { return jobsByStep(ns) }).Should(Equal(map[string]int{"u1/welcome": 1, "u2/welcome": 1}))
	Eventually(func() string { return personaReady(ns, "at-risk") }).Should(Equal("True/Succeeded"))
	Expect(storedMembers(ns, "at-risk")).To(BeEmpty(), "nobody is overdue yet")

	finishUserStep(ns, "u2", "welcome", true)
	Eventually(func() map[string]int { return jobsByStep(ns) }).Should(HaveKey("u2/call"))
	playbookClock.Step(2 * time.Hour)
	pokePlaybook(ns, "overdue")
	Eventually(func() []string { return storedMembers(ns, "at-risk") }).Should(Equal([]string{"u1"}))
	return ns, pb
}

var _ = Describe("user.playbooks", func() {
	It("puts users with an overdue step into a persona that reads it, and takes them out when the step succeeds", func() {
		ns, pb := overdueSetup()
		Expect(userPlaybooks(store, ns, "u1")).To(Equal(map[string]any{"onboard": map[string]any{
			"phase": "Running", "step": "welcome", "overdue": true, "dueAt": after(pb).Add(time.Hour).UTC()}}))
		Expect(userPlaybooks(store, ns, "u2")).To(Equal(map[string]any{"onboard": map[string]any{
			"phase": "Running", "step": "call", "overdue": false, "dueAt": after(pb).Add(100 * time.Hour).UTC()}}))
		Expect(userPlaybooks(store, ns, "u3")).To(BeNil(), "a user without a run has no user.playbooks")
		Expect(fetchPersona(ns, "at-risk").Status.Sources).To(HaveLen(1), "the built-in state is not a DataSource of the persona")

		By("a playbook pass that changes nothing writes nothing, not even to the store")
		var writes atomic.Int32
		r := &PlaybookReconciler{Client: countingClient(&writes), Store: store, Clock: playbookClock, Recorder: events.NewFakeRecorder(10), CreateWorkers: 1}
		gen := store.Namespace(ns).Generation()
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "onboard"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(writes.Load()).To(BeZero())
		Expect(store.Namespace(ns).Generation()).To(Equal(gen), "an unchanged publish must not touch the store")
		Expect(res.RequeueAfter).To(Equal(98*time.Hour), "back when u2's second step is due")

		By("u1's step succeeding takes u1 out")
		finishUserStep(ns, "u1", "welcome", true)
		Eventually(func() []string { return storedMembers(ns, "at-risk") }).Should(BeEmpty())
		Eventually(func() int64 { return fetchPersona(ns, "at-risk").Status.TotalExited }).Should(BeEquivalentTo(1))

		By("deleting the playbook removes its entries, and personas no longer wait for it")
		Expect(k8sClient.Delete(ctx, fetchPlaybook(ns))).To(Succeed())
		Eventually(func() any { return userPlaybooks(store, ns, "u2") }).Should(BeNil())
		requestReconcile(ns, "at-risk", "after-delete")
		Eventually(func() string { return fetchPersona(ns, "at-risk").Status.LastHandledReconcileAt }).Should(Equal("after-delete"))
		Expect(personaReady(ns, "at-risk")).To(Equal("True/Succeeded"))
	})

	It("keeps such members across a restart: a persona waits for the playbooks' state before it evaluates", func() {
		ns, _ := overdueSetup()
		Eventually(func() int64 { return fetchPersona(ns, "at-risk").Status.TotalEntered }).Should(BeEquivalentTo(1))

		By("the manager stops; a store as after a restart: the DataSource loaded, the Playbook not reconciled yet")
		// Stopped, so nothing races the reconcilers driven by hand.
		stopManager()
		running := false
		defer func() {
			if !running {
				startManager()
			}
		}()
		fresh := profile.NewStore()
		ds := &DataSourceReconciler{Client: k8sClient, APIReader: k8sClient, Store: fresh, Clock: clock.RealClock{}, Recorder: events.NewFakeRecorder(10)}
		_, err := ds.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "users"}})
		Expect(err).NotTo(HaveOccurred())
		pr := &PersonaReconciler{Client: k8sClient, Store: fresh, Clock: personaClock, Recorder: events.NewFakeRecorder(10)}
		req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "at-risk"}}
		_, err = pr.Reconcile(ctx, req)
		Expect(err).NotTo(HaveOccurred())
		c := meta.FindStatusCondition(fetchPersona(ns, "at-risk").Status.Conditions, v1alpha1.ReadyCondition)
		Expect(c.Reason).To(Equal(v1alpha1.ReasonWaitingForSources))
		Expect(c.Message).To(ContainSubstring("waiting for Playbooks to publish their runs (the persona reads user.playbooks): onboard"))
		Expect(storedMembers(ns, "at-risk")).To(Equal([]string{"u1"}), "nobody exits while the state is missing")

		By("once the playbook published, the same evaluation keeps u1")
		fresh.Namespace(ns).PublishPlaybook("onboard", map[string]profile.PlaybookState{"u1": {Phase: "Running", Step: "welcome", Overdue: true}})
		_, err = pr.Reconcile(ctx, req)
		Expect(err).NotTo(HaveOccurred())
		Expect(personaReady(ns, "at-risk")).To(Equal("True/Succeeded"))
		Expect(storedMembers(ns, "at-risk")).To(Equal([]string{"u1"}))

		By("the manager starts again: no exit, no re-entry")
		startManager()
		running = true
		requestReconcile(ns, "at-risk", "after-restart")
		Eventually(func() string { return fetchPersona(ns, "at-risk").Status.LastHandledReconcileAt }, "20s").Should(Equal("after-restart"))
		st := fetchPersona(ns, "at-risk").Status
		Expect(st.TotalExited).To(BeZero())
		Expect(st.TotalEntered).To(BeEquivalentTo(1))
		Expect(storedMembers(ns, "at-risk")).To(Equal([]string{"u1"}))
		Expect(jobsByStep(ns)).To(Equal(map[string]int{"u1/welcome": 1, "u2/welcome": 1, "u2/call": 1}), "and no Job twice")
	})

	It("does not hold personas up for a playbook whose trigger matches no persona", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, personaUsers(ns, personaCSV))).To(Succeed())
		newPlaybook(ns, "nobody", nil)
		Eventually(func() string { return playbookReady(ns) }).Should(Equal("False/PersonaNotFound"))
		Expect(k8sClient.Create(ctx, newPersona(ns, "reader", overdueRule))).To(Succeed())
		Eventually(func() string { return personaReady(ns, "reader") }).Should(Equal("True/Succeeded"))
	})

	It("type-checks user.playbooks at admission before any playbook exists, and reserves the name", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, personaUsers(ns, personaCSV))).To(Succeed())
		p := newPersona(ns, "overdue", overdueRule)
		p.Spec.Insights = []v1alpha1.InsightSpec{{Name: "steps", Type: v1alpha1.InsightTopValues, Expression: `user.playbooks["onboard"].step`}}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(func() string { return personaReady(ns, "overdue") }).Should(Equal("True/Succeeded"))

		for rule, want := range map[string]string{
			`user.playbooks["onboard"].overdu`:         "undefined field 'overdu'",
			`user.playbooks["onboard"].overdue == "y"`: "no matching overload",
		} {
			err := k8sClient.Create(ctx, newPersona(ns, "bad", rule))
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", rule, err)
			Expect(err.Error()).To(ContainSubstring(want))
		}

		By("a DataSource declaring its own playbooks attribute is stalled with the reason")
		ds := personaUsers(ns, personaCSV)
		ds.Name = "clash"
		ds.Spec.Attributes = append(ds.Spec.Attributes, v1alpha1.AttributeMapping{Name: "playbooks", Type: v1alpha1.TypeMap})
		Expect(k8sClient.Create(ctx, ds)).To(Succeed())
		Eventually(func() string { return condition(ns, "clash", v1alpha1.StalledCondition) }).Should(Equal("True/InvalidAttributes"))
		msg := meta.FindStatusCondition(fetchDS(ns, "clash").Status.Conditions, v1alpha1.StalledCondition).Message
		Expect(msg).To(ContainSubstring(`attribute name "playbooks" is reserved (built in: user.playbooks is the Playbook controller's run state`))
	})
})

// TestReadsPlaybooks: which personas a change of user.playbooks re-evaluates.
func TestReadsPlaybooks(t *testing.T) {
	compile := func(rule string) *persona.Compiled {
		c, err := persona.Compile(&v1alpha1.PersonaSpec{Rule: rule}, profile.DeclaredSchema(nil))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for name, tc := range map[string]struct {
		entry  compiledEntry
		cached bool
		want   bool
	}{
		"never compiled (waiting for sources)": {want: true},
		"an invalid rule":                      {entry: compiledEntry{err: fmt.Errorf("bad")}, cached: true, want: false},
		"a rule reading user.playbooks":        {entry: compiledEntry{compiled: compile(overdueRule)}, cached: true, want: true},
		"a rule that does not":                 {entry: compiledEntry{compiled: compile(`user.id == "u1"`)}, cached: true, want: false},
	} {
		if got := readsPlaybooks(tc.entry, tc.cached); got != tc.want {
			t.Errorf("%s: readsPlaybooks = %v, want %v", name, got, tc.want)
		}
	}
}
