package controller

import (
	"encoding/json"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/playbook"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
)

// The Playbook specs drive membership by hand: the Persona has no DataSources
// (so its controller waits and never touches the slices) and the specs write
// PersonaMembership slices the way the Persona controller would. envtest has no
// Job controller either, so Job outcomes are set by hand too.

func pbPersona(ns, name string) *v1alpha1.Persona {
	GinkgoHelper()
	p := &v1alpha1.Persona{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.PersonaSpec{Rule: `user.role == "admin"`, Stage: v1alpha1.StageOnboarding},
	}
	Expect(k8sClient.Create(ctx, p)).To(Succeed())
	return p
}

// setMembers writes the persona's only membership slice. Users already in it
// keep their entry time, as with the Persona controller.
func setMembers(p *v1alpha1.Persona, entered time.Time, users ...string) {
	GinkgoHelper()
	s := &v1alpha1.PersonaMembership{}
	key := types.NamespacedName{Namespace: p.Namespace, Name: p.Name + "-members"}
	err := k8sClient.Get(ctx, key, s)
	if apierrors.IsNotFound(err) {
		s = &v1alpha1.PersonaMembership{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: key.Name,
			Labels: map[string]string{v1alpha1.PersonaLabel: p.Name}}, Persona: p.Name}
		Expect(controllerutil.SetControllerReference(p, s, scheme)).To(Succeed())
	} else {
		Expect(err).NotTo(HaveOccurred())
	}
	kept := map[string]metav1.Time{}
	for _, m := range s.Members {
		kept[m.UserID] = m.EnteredAt
	}
	s.Members = nil
	for _, u := range users {
		at, ok := kept[u]
		if !ok {
			at = metav1.NewTime(entered)
		}
		s.Members = append(s.Members, v1alpha1.MembershipEntry{UserID: u, AccountID: "acme", EnteredAt: at})
	}
	s.MemberCount = int32(len(users))
	if s.ResourceVersion == "" {
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
	} else {
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
	}
}

func jobTemplate() batchv1.JobTemplateSpec {
	return batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{{Name: "task", Image: "busybox", Env: []corev1.EnvVar{{Name: "FROM_TEMPLATE", Value: "yes"}}}},
	}}}}
}

func newPlaybook(ns, persona string, mutate func(*v1alpha1.PlaybookSpec)) *v1alpha1.Playbook {
	GinkgoHelper()
	pb := &v1alpha1.Playbook{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "onboard"},
		Spec: v1alpha1.PlaybookSpec{
			PersonaRef: &v1alpha1.LocalObjectReference{Name: persona},
			Steps: []v1alpha1.PlaybookStep{
				{Name: "welcome", JobTemplate: jobTemplate()},
				{Name: "call", JobTemplate: jobTemplate()},
			},
			MaxConcurrentJobs: 100, MaxLaunchesPerMinute: 1000, UsersPerJob: 1,
		},
	}
	if mutate != nil {
		mutate(&pb.Spec)
	}
	Expect(k8sClient.Create(ctx, pb)).To(Succeed())
	return pb
}

func playbookJobs(ns string) []batchv1.Job {
	GinkgoHelper()
	var list batchv1.JobList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

// jobsByStep maps "user/step" to the number of Jobs for it.
func jobsByStep(ns string) map[string]int {
	out := map[string]int{}
	for _, j := range playbookJobs(ns) {
		out[j.Annotations[playbook.UserAnnotation]+"/"+j.Labels[v1alpha1.StepLabel]]++
	}
	return out
}

// finishJob sets a Job's outcome the way the Job controller would.
func finishJob(j *batchv1.Job, succeeded bool) {
	GinkgoHelper()
	now := metav1.Now()
	j.Status.StartTime = &now
	if succeeded {
		j.Status.Succeeded = 1
		j.Status.CompletionTime = &now
		j.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	} else {
		j.Status.Failed = 1
		j.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	}
	Expect(k8sClient.Status().Update(ctx, j)).To(Succeed())
}

// finishStep finishes every unfinished Job of a step.
func finishStep(ns, step string, succeeded bool) {
	GinkgoHelper()
	for _, j := range playbookJobs(ns) {
		if j.Labels[v1alpha1.StepLabel] == step && len(j.Status.Conditions) == 0 {
			finishJob(&j, succeeded)
		}
	}
}

func fetchPlaybook(ns string) *v1alpha1.Playbook {
	GinkgoHelper()
	pb := &v1alpha1.Playbook{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "onboard"}, pb)).To(Succeed())
	return pb
}

func playbookCounts(ns string) string {
	st := fetchPlaybook(ns).Status
	return fmt.Sprintf("pending=%d running=%d succeeded=%d failed=%d overdue=%d", st.Pending, st.Running, st.Succeeded, st.Failed, st.Overdue)
}

func playbookReady(ns string) string {
	return cluster.Condition(fetchPlaybook(ns).Status.Conditions, v1alpha1.ReadyCondition)
}

func ledgerPhases(ns string) map[string]v1alpha1.RunPhase {
	GinkgoHelper()
	var list v1alpha1.PlaybookProgressList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	out := map[string]v1alpha1.RunPhase{}
	for _, s := range list.Items {
		for _, r := range s.Runs {
			out[r.UserID] = r.Phase
		}
	}
	return out
}

func envOf(j batchv1.Job) map[string]string {
	out := map[string]string{}
	for _, e := range j.Spec.Template.Spec.Containers[0].Env {
		out[e.Name] = e.Value
	}
	return out
}

// payloadOf reads a Job's payload Secret (the files mounted at playbook.PayloadDir).
func payloadOf(j batchv1.Job) map[string][]byte {
	GinkgoHelper()
	var s corev1.Secret
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: j.Namespace, Name: j.Name}, &s)).To(Succeed())
	return s.Data
}

// after returns a time safely after the playbook's creation (whole seconds).
func after(pb *v1alpha1.Playbook) time.Time { return pb.CreationTimestamp.Add(time.Second) }

var _ = Describe("Playbook controller", func() {
	It("runs each step once per entering user, in order, with the user's context", func() {
		ns := newNamespace()
		p := pbPersona(ns, "stalled")
		pb := newPlaybook(ns, "stalled", nil)
		setMembers(p, pb.CreationTimestamp.Add(-time.Hour), "old") // inside before the playbook: no run
		setMembers(p, after(pb), "old", "u1", "u2", "u3")

		Eventually(func() map[string]int { return jobsByStep(ns) }).Should(Equal(map[string]int{"u1/welcome": 1, "u2/welcome": 1, "u3/welcome": 1}))
		Eventually(func() string { return playbookCounts(ns) }).Should(Equal("pending=0 running=3 succeeded=0 failed=0 overdue=0"))
		Expect(ledgerPhases(ns)).To(Equal(map[string]v1alpha1.RunPhase{"u1": v1alpha1.RunRunning, "u2": v1alpha1.RunRunning, "u3": v1alpha1.RunRunning}))

		j := playbookJobs(ns)[0]
		Expect(metav1.IsControlledBy(&j, pb)).To(BeTrue())
		Expect(j.Finalizers).To(ContainElement(v1alpha1.RunFinalizer))
		Expect(len(j.Name)).To(BeNumerically("<=", 63))
		env := envOf(j)
		Expect(env).To(HaveKeyWithValue("FROM_TEMPLATE", "yes"))
		Expect(env).To(HaveKeyWithValue(playbook.EnvPlaybook, "onboard"))
		Expect(env).To(HaveKeyWithValue(playbook.EnvStep, "welcome"))
		Expect(env).To(HaveKeyWithValue(playbook.EnvPersona, "stalled"))
		Expect(env).To(HaveKeyWithValue(playbook.EnvAccountID, "acme"))
		Expect(env).To(HaveKeyWithValue(playbook.EnvUserID, j.Annotations[playbook.UserAnnotation]))
		Expect(env[playbook.EnvEnteredAt]).To(Equal(after(pb).UTC().Format(time.RFC3339)))

		By("the first step succeeding for u1 and u2 and failing for u3")
		for _, j := range playbookJobs(ns) {
			finishJob(&j, j.Annotations[playbook.UserAnnotation] != "u3")
		}
		Eventually(func() map[string]int { return jobsByStep(ns) }).Should(Equal(map[string]int{
			"u1/welcome": 1, "u2/welcome": 1, "u3/welcome": 1, "u1/call": 1, "u2/call": 1}))
		Eventually(func() string { return playbookCounts(ns) }).Should(Equal("pending=0 running=2 succeeded=0 failed=1 overdue=0"))

		finishStep(ns, "call", true)
		Eventually(func() string { return playbookCounts(ns) }).Should(Equal("pending=0 running=0 succeeded=2 failed=1 overdue=0"))
		Expect(ledgerPhases(ns)).To(Equal(map[string]v1alpha1.RunPhase{"u1": v1alpha1.RunSucceeded, "u2": v1alpha1.RunSucceeded, "u3": v1alpha1.RunFailed}))
		Expect(playbookReady(ns)).To(Equal("True/Succeeded"))

		By("Jobs deleted after they finished (ttlSecondsAfterFinished) are released and never re-created")
		for _, j := range playbookJobs(ns) {
			Expect(k8sClient.Delete(ctx, &j, client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
		}
		Eventually(func() []batchv1.Job { return playbookJobs(ns) }).Should(BeEmpty())
		Consistently(func() []batchv1.Job { return playbookJobs(ns) }, 2*time.Second).Should(BeEmpty())
		Expect(playbookCounts(ns)).To(Equal("pending=0 running=0 succeeded=2 failed=1 overdue=0"))

		By("a user who leaves and comes back gets no second run (reentryPolicy Once)")
		setMembers(p, after(pb), "old", "u2", "u3")                        // u1 left
		setMembers(p, after(pb).Add(time.Minute), "old", "u1", "u2", "u3") // and came back
		Consistently(func() []batchv1.Job { return playbookJobs(ns) }, 2*time.Second).Should(BeEmpty())
	})

	It("plans the pass after an entry from what changed, not from every member", func() {
		ns := newNamespace()
		p := pbPersona(ns, "stalled")
		var old []string
		for i := range 300 {
			old = append(old, fmt.Sprintf("old%03d", i))
		}
		setMembers(p, time.Now().Add(-time.Hour), old...) // inside before the playbook: no runs
		pb := newPlaybook(ns, "stalled", nil)
		passes := func(kind string) float64 {
			return promtestutil.ToFloat64(playbookPasses.WithLabelValues(ns, pb.Name, kind))
		}
		Eventually(func() string { return playbookReady(ns) }).Should(Equal("True/Succeeded"))
		Eventually(func() float64 { return passes("full") }).Should(BeNumerically(">=", 1))
		full, incremental := passes("full"), passes("incremental")

		setMembers(p, after(pb), append(old, "u1")...)
		Eventually(func() map[string]int { return jobsByStep(ns) }).Should(Equal(map[string]int{"u1/welcome": 1}))
		Eventually(func() string { return playbookCounts(ns) }).Should(Equal("pending=0 running=1 succeeded=0 failed=0 overdue=0"))
		Expect(passes("incremental")).To(BeNumerically(">", incremental), "the entry was planned incrementally")
		Expect(passes("full")).To(Equal(full), "no pass read every member again")

		By("the Job finishing moves the run on, incrementally too")
		finishStep(ns, "welcome", true)
		Eventually(func() map[string]int { return jobsByStep(ns) }).Should(Equal(map[string]int{"u1/welcome": 1, "u1/call": 1}))
		Expect(passes("full")).To(Equal(full))
	})

	It("survives a manager restart mid-way without a second run or a lost one", func() {
		ns := newNamespace()
		p := pbPersona(ns, "stalled")
		pb := newPlaybook(ns, "stalled", func(s *v1alpha1.PlaybookSpec) { s.MaxConcurrentJobs = 2 })
		setMembers(p, after(pb), "u1", "u2", "u3", "u4", "u5")
		Eventually(func() int { return len(playbookJobs(ns)) }).Should(Equal(2))
		Eventually(func() string { return playbookCounts(ns) }).Should(Equal("pending=3 running=2 succeeded=0 failed=0 overdue=0"))
		Expect(meta.IsStatusConditionTrue(fetchPlaybook(ns).Status.Conditions, v1alpha1.ReconcilingCondition)).To(BeTrue())

		restartManager()
		for i := 0; i < 20 && len(jobsByStep(ns)) < 10; i++ {
			finishStep(ns, "welcome", true)
			finishStep(ns, "call", true)
			time.Sleep(200 * time.Millisecond)
			if i == 5 {
				restartManager()
			}
		}
		Eventually(func() string {
			finishStep(ns, "welcome", true)
			finishStep(ns, "call", true)
			return playbookCounts(ns)
		}).Should(Equal("pending=0 running=0 succeeded=5 failed=0 overdue=0"))
		want := map[string]int{}
		for _, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
			want[u+"/welcome"], want[u+"/call"] = 1, 1
		}
		Expect(jobsByStep(ns)).To(Equal(want))
	})

	It("pauses launches while suspended or while the persona's data is stale", func() {
		ns := newNamespace()
		p := pbPersona(ns, "stalled")
		pb := newPlaybook(ns, "stalled", func(s *v1alpha1.PlaybookSpec) { s.Suspend = true })
		setMembers(p, after(pb), "u1", "u2")
		Eventually(func() string { return playbookReady(ns) }).Should(Equal("False/Suspended"))
		Eventually(func() string { return playbookCounts(ns) }).Should(Equal("pending=2 running=0 succeeded=0 failed=0 overdue=0"))
		Consistently(func() []batchv1.Job { return playbookJobs(ns) }, time.Second).Should(BeEmpty())

		By("stale data pauses too")
		// Suspend the persona so its controller leaves the hand-set condition alone.
		// Each write retries on a conflict: the controller may write the
		// persona's status in between.
		Eventually(func() error {
			pp := fetchPersona(ns, "stalled")
			pp.Spec.Suspend = true
			return k8sClient.Update(ctx, pp)
		}).Should(Succeed())
		Eventually(func() error {
			pp := fetchPersona(ns, "stalled")
			meta.SetStatusCondition(&pp.Status.Conditions, metav1.Condition{Type: v1alpha1.StaleCondition, Status: metav1.ConditionTrue, Reason: "Stale", Message: "old"})
			return k8sClient.Status().Update(ctx, pp)
		}).Should(Succeed())
		pb = fetchPlaybook(ns)
		pb.Spec.Suspend = false
		Expect(k8sClient.Update(ctx, pb)).To(Succeed())
		Eventually(func() string { return playbookReady(ns) }).Should(Equal("False/DataStale"))
		Consistently(func() []batchv1.Job { return playbookJobs(ns) }, time.Second).Should(BeEmpty())

		By("fresh data resumes")
		Eventually(func() error {
			pp := fetchPersona(ns, "stalled")
			meta.RemoveStatusCondition(&pp.Status.Conditions, v1alpha1.StaleCondition)
			return k8sClient.Status().Update(ctx, pp)
		}).Should(Succeed())
		Eventually(func() int { return len(playbookJobs(ns)) }).Should(Equal(2))
		Eventually(func() string { return playbookReady(ns) }).Should(Equal("True/Succeeded"))
	})

	It("batches users into one Job with usersPerJob", func() {
		ns := newNamespace()
		p := pbPersona(ns, "stalled")
		pb := newPlaybook(ns, "stalled", func(s *v1alpha1.PlaybookSpec) { s.UsersPerJob = 2; s.Steps = s.Steps[:1] })
		setMembers(p, after(pb), "u1", "u2", "u3")
		Eventually(func() int { return len(playbookJobs(ns)) }).Should(Equal(2))
		seen := map[string]int{}
		for _, j := range playbookJobs(ns) {
			var users []map[string]any
			Expect(envOf(j)).To(HaveKeyWithValue(playbook.EnvUsersFile, playbook.PayloadDir+"/"+playbook.UsersKey))
			Expect(json.Unmarshal(payloadOf(j)[playbook.UsersKey], &users)).To(Succeed())
			Expect(envOf(j)[playbook.EnvUserCount]).To(Equal(fmt.Sprint(len(users))))
			for _, u := range users {
				seen[u["userId"].(string)]++
			}
		}
		Expect(seen).To(Equal(map[string]int{"u1": 1, "u2": 1, "u3": 1}))
		finishStep(ns, "welcome", true)
		Eventually(func() string { return playbookCounts(ns) }).Should(Equal("pending=0 running=0 succeeded=3 failed=0 overdue=0"))
	})

	It("counts steps past dueAfter as overdue, by time alone", func() {
		ns := newNamespace()
		p := pbPersona(ns, "stalled")
		pb := newPlaybook(ns, "stalled", func(s *v1alpha1.PlaybookSpec) {
			s.Steps[0].DueAfter = &metav1.Duration{Duration: time.Hour}
		})
		playbookClock.SetTime(after(pb))
		setMembers(p, after(pb), "u1")
		Eventually(func() string { return playbookCounts(ns) }).Should(Equal("pending=0 running=1 succeeded=0 failed=0 overdue=0"))
		// The controller asked for a requeue at the due time, but the work
		// queue waits in real time: stand in for it once the clock has moved.
		playbookClock.Step(2 * time.Hour)
		pokePlaybook(ns, "due")
		Eventually(func() string { return playbookCounts(ns) }).Should(Equal("pending=0 running=1 succeeded=0 failed=0 overdue=1"))
		finishStep(ns, "welcome", true)
		Eventually(func() string { return playbookCounts(ns) }).Should(Equal("pending=0 running=1 succeeded=0 failed=0 overdue=0"))
	})

	It("gives a new run per entry under EveryEntry", func() {
		ns := newNamespace()
		p := pbPersona(ns, "stalled")
		pb := newPlaybook(ns, "stalled", func(s *v1alpha1.PlaybookSpec) {
			s.ReentryPolicy = v1alpha1.ReentryEveryEntry
			s.Steps = s.Steps[:1]
		})
		setMembers(p, after(pb), "u1")
		Eventually(func() int { return len(playbookJobs(ns)) }).Should(Equal(1))
		finishStep(ns, "welcome", true)
		Eventually(func() string { return playbookCounts(ns) }).Should(Equal("pending=0 running=0 succeeded=1 failed=0 overdue=0"))
		setMembers(p, after(pb))                      // left
		setMembers(p, after(pb).Add(time.Hour), "u1") // and came back
		Eventually(func() int { return len(playbookJobs(ns)) }).Should(Equal(2))
	})

	It("reports a missing persona instead of failing", func() {
		ns := newNamespace()
		newPlaybook(ns, "nobody", nil)
		Eventually(func() string { return playbookReady(ns) }).Should(Equal("False/PersonaNotFound"))
	})

	It("runs on exit for Exit playbooks", func() {
		ns := newNamespace()
		p := pbPersona(ns, "stalled")
		pb := newPlaybook(ns, "stalled", func(s *v1alpha1.PlaybookSpec) { s.Trigger = v1alpha1.TriggerExit; s.Steps = s.Steps[:1] })
		setMembers(p, after(pb), "u1", "u2")
		Eventually(func() map[string]v1alpha1.RunPhase { return ledgerPhases(ns) }).Should(Equal(map[string]v1alpha1.RunPhase{
			"u1": v1alpha1.RunArmed, "u2": v1alpha1.RunArmed}))
		Expect(playbookJobs(ns)).To(BeEmpty())
		setMembers(p, after(pb), "u2")
		Eventually(func() map[string]int { return jobsByStep(ns) }).Should(Equal(map[string]int{"u1/welcome": 1}))
	})
})
