package controller

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/conditions"
)

// Failures the user must see: a condition with a reason and message, and a
// Warning Event, never an object that looks fine while nothing happens.

// rawStatus reads an object's status as stored, to see which fields are there.
func rawStatus(ns, name, kind string) map[string]any {
	GinkgoHelper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind))
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, u)).To(Succeed())
	st, _, _ := unstructured.NestedMap(u.Object, "status")
	return st
}

func playbookCondition(ns, typ string) *string {
	c := meta.FindStatusCondition(fetchPlaybook(ns).Status.Conditions, typ)
	if c == nil {
		return nil
	}
	s := string(c.Status) + "/" + c.Reason + ": " + c.Message
	return &s
}

func playbookConditionText(ns, typ string) string {
	if s := playbookCondition(ns, typ); s != nil {
		return *s
	}
	return ""
}

var _ = Describe("Failures are visible", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("defaults a step's restartPolicy to Never and rejects Always at admission", func() {
		p := pbPersona(ns, "newcomers")
		pb := newPlaybook(ns, "newcomers", func(s *v1alpha1.PlaybookSpec) {
			s.Steps = s.Steps[:1]
			s.Steps[0].JobTemplate.Spec.Template.Spec.RestartPolicy = ""
		})
		setMembers(p, after(pb), "u1")
		Eventually(func() []string {
			var out []string
			for _, j := range playbookJobs(ns) {
				out = append(out, string(j.Spec.Template.Spec.RestartPolicy))
			}
			return out
		}).Should(Equal([]string{"Never"}))
		Eventually(func() string { return playbookReady(ns) }).Should(Equal("True/Succeeded"))

		bad := &v1alpha1.Playbook{}
		bad.Namespace, bad.Name = ns, "always"
		bad.Spec = *pb.Spec.DeepCopy()
		bad.Spec.Steps[0].JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
		err := k8sClient.Create(ctx, bad)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("restartPolicy must be Never or OnFailure"))
	})

	It("reports a Job the API server rejects, stops launching it, and resumes when the spec is fixed", func() {
		p := pbPersona(ns, "newcomers")
		pb := newPlaybook(ns, "newcomers", func(s *v1alpha1.PlaybookSpec) {
			s.Steps = s.Steps[:1]
			s.Steps[0].JobTemplate.Spec.Template.Spec.Containers[0].Name = "Not_A_DNS_Label"
		})
		setMembers(p, after(pb), "u1", "u2")

		Eventually(func() string { return playbookReady(ns) }).Should(Equal("False/JobCreateFailed"))
		Expect(playbookConditionText(ns, v1alpha1.StalledCondition)).To(And(
			HavePrefix("True/JobCreateFailed: creating Job"), ContainSubstring("Not_A_DNS_Label")))
		Expect(playbookConditionText(ns, v1alpha1.ReadyCondition)).To(ContainSubstring("no Jobs are launched until the spec changes"))
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("JobCreateFailed: creating Job"))
		Expect(playbookJobs(ns)).To(BeEmpty())

		By("no retry loop: the stalled playbook makes no further create attempts")
		before := eventNotes(ns)
		Consistently(func() string { return playbookReady(ns) }, 3*time.Second).Should(Equal("False/JobCreateFailed"))
		Expect(strings.Count(eventNotes(ns), "JobCreateFailed")).To(Equal(strings.Count(before, "JobCreateFailed")))

		By("fixing the template launches the recorded runs")
		cur := fetchPlaybook(ns)
		patch := client.MergeFrom(cur.DeepCopy())
		cur.Spec.Steps[0].JobTemplate.Spec.Template.Spec.Containers[0].Name = "task"
		Expect(k8sClient.Patch(ctx, cur, patch)).To(Succeed())
		Eventually(func() map[string]int { return jobsByStep(ns) }).Should(Equal(map[string]int{"u1/welcome": 1, "u2/welcome": 1}))
		Eventually(func() string { return playbookReady(ns) }).Should(Equal("True/Succeeded"))
		Expect(playbookCondition(ns, v1alpha1.StalledCondition)).To(BeNil())
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("Launched: created 2 Jobs; 0 runs pending, 2 running"))
	})

	It("names a missing persona in the condition and a Warning Event", func() {
		newPlaybook(ns, "ghost", nil)
		Eventually(func() string { return playbookReady(ns) }).Should(Equal("False/PersonaNotFound"))
		Expect(playbookConditionText(ns, v1alpha1.ReadyCondition)).To(ContainSubstring(`persona "ghost"`))
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring(`PersonaNotFound: persona "ghost" (spec.personaRef) not found`))
	})

	It("reports a DataSource that rejects more than maxRejectPercent of its records", func() {
		data := "id,account,nps,role\nu1,a,1,x\nu2,a,bad,x\nu3,a,bad,x\nu4,a,bad,x\nu5,a,bad,x\nu6,a,bad,x\nu7,a,7,x\n"
		Expect(k8sClient.Create(ctx, inlineCSV(userSource(ns, "crm"), data))).To(Succeed())
		Eventually(func() string { return condition(ns, "crm", v1alpha1.DegradedCondition) }).Should(Equal("True/RecordsRejected"))
		ds := fetchDS(ns, "crm")
		Expect(condition(ns, "crm", v1alpha1.ReadyCondition)).To(Equal("True/Succeeded"), "the accepted records apply")
		Expect(meta.FindStatusCondition(ds.Status.Conditions, v1alpha1.DegradedCondition).Message).To(
			HavePrefix("5 of 7 records rejected (71.4%, more than maxRejectPercent 10%); first: record 2"))
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("RecordsRejected: 5 of 7 records rejected"))

		By("a clean sync clears it, and zero rejections are stored as 0")
		updateSpec(ns, "crm", func(ds *v1alpha1.DataSource) { ds.Spec.Inline.Data = csvRows(3) })
		Eventually(func() string { return condition(ns, "crm", v1alpha1.DegradedCondition) }).Should(BeEmpty())
		Expect(rawStatus(ns, "crm", "DataSource")).To(HaveKeyWithValue("recordsRejected", BeNumerically("==", 0)))
	})

	It("reports InvalidRule with a Warning Event, and a huge compile error still fits in status", func() {
		Expect(k8sClient.Create(ctx, personaUsers(ns, personaCSV))).To(Succeed())
		var b strings.Builder
		for i := 0; b.Len() < 8000; i++ {
			fmt.Fprintf(&b, "has(user.nps) && user.nps == %d || ", 1000+i) // matches nobody
		}
		b.WriteString("false")
		Expect(k8sClient.Create(ctx, newPersona(ns, "long", b.String()))).To(Succeed())
		Eventually(func() string { return personaReady(ns, "long") }).Should(Equal("True/Succeeded"))

		By("zero counts are stored as 0, so kubectl's columns show 0")
		st := rawStatus(ns, "long", "Persona")
		Expect(st).To(HaveKeyWithValue("members", BeNumerically("==", 0)))
		Expect(st).To(HaveKeyWithValue("lastChange", HaveKeyWithValue("exited", BeNumerically("==", 0))))

		By("a schema change makes every one of hundreds of references fail to compile")
		updateSpec(ns, "users", func(ds *v1alpha1.DataSource) {
			ds.Spec.Attributes = ds.Spec.Attributes[:1] // nps is no longer declared
		})
		Eventually(func() string { return personaReady(ns, "long") }).Should(Equal("False/InvalidRule"))
		p := fetchPersona(ns, "long")
		for _, typ := range []string{v1alpha1.ReadyCondition, v1alpha1.StalledCondition} {
			c := meta.FindStatusCondition(p.Status.Conditions, typ)
			Expect(len(c.Message)).To(BeNumerically("<=", conditions.MaxMessageBytes))
			Expect(c.Message).To(ContainSubstring(conditions.TruncatedMarker))
		}
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("InvalidRule: spec.rule:"))
	})
})
