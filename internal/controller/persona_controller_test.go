package controller

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/persona"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
)

// personaUsers is a User DataSource with role, nps and lastLogin.
func personaUsers(ns, data string) *v1alpha1.DataSource {
	return &v1alpha1.DataSource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "users"},
		Spec: v1alpha1.DataSourceSpec{
			Type:   v1alpha1.DataSourceInline,
			Key:    v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
			Inline: &v1alpha1.InlineSource{Format: v1alpha1.FormatCSV, Data: data},
			Attributes: []v1alpha1.AttributeMapping{
				{Name: "role", Type: v1alpha1.TypeString},
				{Name: "nps", Type: v1alpha1.TypeInt},
				{Name: "lastLogin", Type: v1alpha1.TypeTimestamp, From: "last_login"},
				{Name: "requests", Type: v1alpha1.TypeList},
			},
		},
	}
}

func personaAccounts(ns string) *v1alpha1.DataSource {
	return &v1alpha1.DataSource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "accounts"},
		Spec: v1alpha1.DataSourceSpec{
			Type:   v1alpha1.DataSourceInline,
			Entity: v1alpha1.EntityAccount,
			Key:    v1alpha1.RecordKey{AccountID: "id"},
			Inline: &v1alpha1.InlineSource{Format: v1alpha1.FormatCSV, Data: "id,tier,arr\nacme,enterprise,250000\ninitech,smb,1000\n"},
			Attributes: []v1alpha1.AttributeMapping{
				{Name: "tier", Type: v1alpha1.TypeString},
				{Name: "arr", Type: v1alpha1.TypeDouble},
			},
		},
	}
}

const personaCSV = `id,account,role,nps,last_login,requests
u1,acme,decision_maker,3,2026-11-20T00:00:00Z,audit_log;sso
u2,acme,champion,9,2026-11-21T00:00:00Z,sso
u3,initech,decision_maker,2,2026-11-01T00:00:00Z,audit_log
u4,acme,decision_maker,10,2026-11-22T00:00:00Z,
u5,acme,decision_maker,5,2026-11-19T00:00:00Z,audit_log
`

func fetchPersona(ns, name string) *v1alpha1.Persona {
	GinkgoHelper()
	p := &v1alpha1.Persona{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, p)).To(Succeed())
	return p
}

func personaReady(ns, name string) string {
	return cluster.Condition(fetchPersona(ns, name).Status.Conditions, v1alpha1.ReadyCondition)
}

// storedMembers reads the persona's members from its slices.
func storedMembers(ns, name string) []string {
	var list v1alpha1.PersonaMembershipList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.PersonaLabel: name})).To(Succeed())
	var ids []string
	for _, s := range list.Items {
		for _, m := range s.Members {
			ids = append(ids, m.UserID)
		}
	}
	sort.Strings(ids)
	return ids
}

func newPersona(ns, name, rule string) *v1alpha1.Persona {
	return &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.PersonaSpec{Rule: rule}}
}

func requestReconcile(ns, name, value string) {
	GinkgoHelper()
	p := fetchPersona(ns, name)
	patch := client.MergeFrom(p.DeepCopy())
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[v1alpha1.ReconcileRequestAnnotation] = value
	Expect(k8sClient.Patch(ctx, p, patch)).To(Succeed())
}

var _ = Describe("Persona controller", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		Expect(k8sClient.Create(ctx, personaUsers(ns, personaCSV))).To(Succeed())
		Expect(k8sClient.Create(ctx, personaAccounts(ns))).To(Succeed())
	})

	It("computes members and insights from real DataSources and stores them in owned slices", func() {
		p := newPersona(ns, "at-risk", `account.tier == "enterprise" && user.role == "decision_maker" && user.nps <= 6`)
		p.Spec.Stage = v1alpha1.StageRetention
		p.Spec.Insights = []v1alpha1.InsightSpec{
			{Name: "requests", Type: v1alpha1.InsightTopValues, Expression: "has(user.requests) ? user.requests : []"},
			{Name: "arr", Type: v1alpha1.InsightSum, Expression: "account.arr"},
		}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(func() string { return personaReady(ns, "at-risk") }).Should(Equal("True/Succeeded"))

		st := fetchPersona(ns, "at-risk").Status
		Expect(st.Members).To(BeEquivalentTo(2))
		Expect(st.SampleMembers).To(Equal([]string{"u1", "u5"}))
		Expect(st.TotalEntered).To(BeEquivalentTo(2))
		Expect(st.LastChange.Entered).To(BeEquivalentTo(2))
		Expect(st.Sources).To(HaveLen(2))
		Expect(st.DataFreshness).NotTo(BeNil())
		Expect(st.Insights).To(HaveLen(2))
		Expect(st.Insights[0].Values).To(Equal([]v1alpha1.InsightValue{{Value: "audit_log", Count: 2}, {Value: "sso", Count: 1}}))
		Expect(st.Insights[1].Value).To(Equal("500000"))
		Expect(storedMembers(ns, "at-risk")).To(Equal([]string{"u1", "u5"}))
		Expect(fetchPersona(ns, "at-risk").Labels).To(HaveKeyWithValue(v1alpha1.StageLabel, "retention"))

		var slices v1alpha1.PersonaMembershipList
		Expect(k8sClient.List(ctx, &slices, client.InNamespace(ns))).To(Succeed())
		Expect(slices.Items).To(HaveLen(1))
		Expect(metav1.IsControlledBy(&slices.Items[0], fetchPersona(ns, "at-risk"))).To(BeTrue())
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("2 entered, 0 exited"))
	})

	It("exports members, entries and evaluation time as metrics, and drops them with the persona", func() {
		Expect(k8sClient.Create(ctx, newPersona(ns, "detractors", "has(user.nps) && user.nps <= 6"))).To(Succeed())
		Eventually(metricValue).WithArguments("persona_members", ns, "detractors").Should(Equal("3"))
		Expect(metricValue("persona_entered_total", ns, "detractors")).To(Equal("3"))
		Expect(metricValue("persona_evaluation_duration_seconds", ns, "detractors")).NotTo(BeEmpty())
		Expect(k8sClient.Delete(ctx, fetchPersona(ns, "detractors"))).To(Succeed())
		for _, m := range []string{"persona_members", "persona_entered_total", "persona_exited_total", "persona_evaluation_duration_seconds"} {
			Eventually(metricValue).WithArguments(m, ns, "detractors").Should(BeEmpty(), m)
		}
	})

	It("moves users in and out when the data changes, with correct counts", func() {
		Expect(k8sClient.Create(ctx, newPersona(ns, "detractors", "has(user.nps) && user.nps <= 6"))).To(Succeed())
		Eventually(func() []string { return storedMembers(ns, "detractors") }).Should(Equal([]string{"u1", "u3", "u5"}))
		Eventually(func() int64 { return fetchPersona(ns, "detractors").Status.TotalEntered }).Should(BeEquivalentTo(3))

		updateSpec(ns, "users", func(ds *v1alpha1.DataSource) {
			ds.Spec.Inline.Data = strings.Replace(strings.Replace(personaCSV, "u1,acme,decision_maker,3", "u1,acme,decision_maker,9", 1),
				"u4,acme,decision_maker,10", "u4,acme,decision_maker,1", 1)
		})
		Eventually(func() []string { return storedMembers(ns, "detractors") }).Should(Equal([]string{"u3", "u4", "u5"}))
		Eventually(func() int64 { return fetchPersona(ns, "detractors").Status.TotalExited }).Should(BeEquivalentTo(1))
		st := fetchPersona(ns, "detractors").Status
		Expect(st.TotalEntered).To(BeEquivalentTo(4))
		Expect(*st.LastChange).To(MatchFields(IgnoreExtras, Fields{"Entered": BeEquivalentTo(1), "Exited": BeEquivalentTo(1)}))
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("1 entered, 1 exited; 3 members"))
	})

	It("re-evaluates only the changed profiles, and every profile when someone else edits its slices", func() {
		evaluations := func(mode string) float64 {
			return promtestutil.ToFloat64(personaEvaluations.WithLabelValues(ns, "detractors", mode))
		}
		Expect(k8sClient.Create(ctx, newPersona(ns, "detractors", "has(user.nps) && user.nps <= 6"))).To(Succeed())
		Eventually(func() []string { return storedMembers(ns, "detractors") }).Should(Equal([]string{"u1", "u3", "u5"}))
		Eventually(func() int64 { return fetchPersona(ns, "detractors").Status.TotalEntered }).Should(BeEquivalentTo(3))
		full, changed := evaluations(persona.ModeFull), evaluations(persona.ModeChanged)
		Expect(full).To(BeNumerically(">=", 1), "the first evaluation visits every profile")

		By("a one-row change is evaluated for the changed profile only")
		updateSpec(ns, "users", func(ds *v1alpha1.DataSource) {
			ds.Spec.Inline.Data = strings.Replace(personaCSV, "u4,acme,decision_maker,10", "u4,acme,decision_maker,1", 1)
		})
		Eventually(func() []string { return storedMembers(ns, "detractors") }).Should(Equal([]string{"u1", "u3", "u4", "u5"}))
		// The slices are written before the evaluation is counted.
		Eventually(evaluations).WithArguments(persona.ModeChanged).Should(BeNumerically(">", changed))
		Expect(evaluations(persona.ModeFull)).To(Equal(full), "no full evaluation for a one-row change")

		By("a slice edited by someone else is not trusted: the next evaluation is full and restores it")
		var list v1alpha1.PersonaMembershipList
		Expect(k8sClient.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.PersonaLabel: "detractors"})).To(Succeed())
		Expect(list.Items).To(HaveLen(1))
		slice := list.Items[0]
		slice.Members = slices.DeleteFunc(slice.Members, func(m v1alpha1.MembershipEntry) bool { return m.UserID == "u3" })
		slice.MemberCount = int32(len(slice.Members))
		Expect(k8sClient.Update(ctx, &slice)).To(Succeed())
		Eventually(func() []string { return storedMembers(ns, "detractors") }).Should(Equal([]string{"u1", "u3", "u4", "u5"}))
		Eventually(evaluations).WithArguments(persona.ModeFull).Should(BeNumerically(">", full))
	})

	It("flips membership when time alone crosses the rule's threshold", func() {
		personaClock.SetTime(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
		Expect(k8sClient.Create(ctx, newPersona(ns, "inactive", `now - user.lastLogin > duration("480h")`))).To(Succeed())
		Eventually(func() []string { return storedMembers(ns, "inactive") }).Should(Equal([]string{"u3"}))

		personaClock.SetTime(time.Date(2026, 12, 12, 0, 0, 0, 0, time.UTC)) // u1, u2 and u5 now past 20 days, u4 at exactly 20
		requestReconcile(ns, "inactive", "tick")
		Eventually(func() []string { return storedMembers(ns, "inactive") }).Should(Equal([]string{"u1", "u2", "u3", "u5"}))
	})

	It("re-evaluates when a renewal window opens or closes and reports when in status", func() {
		t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
		personaClock.SetTime(t0)
		day := 24 * time.Hour
		Expect(k8sClient.Create(ctx, &v1alpha1.DataSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "renewals"},
			Spec: v1alpha1.DataSourceSpec{
				Type: v1alpha1.DataSourceInline, Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "id"},
				Inline: &v1alpha1.InlineSource{Format: v1alpha1.FormatCSV, Data: "id,renewal_date\n" +
					"acme," + t0.Add(100*day).Format(time.RFC3339) + "\n" + // enters the 90-day window at t0+10d
					"initech," + t0.Add(30*day).Format(time.RFC3339) + "\n"}, // inside it; renews (exits) at t0+30d
				Attributes: []v1alpha1.AttributeMapping{{Name: "renewalDate", Type: v1alpha1.TypeTimestamp, From: "renewal_date"}},
			},
		})).To(Succeed())
		p := newPersona(ns, "renewing", `account.renewalDate - now <= duration("2160h") && account.renewalDate > now`)
		p.Spec.RefreshInterval = &metav1.Duration{Duration: 1000 * time.Hour}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(func() []string { return storedMembers(ns, "renewing") }).Should(Equal([]string{"u3"}))
		nextEvaluation := func() time.Time {
			if t := fetchPersona(ns, "renewing").Status.NextEvaluationTime; t != nil {
				return t.UTC()
			}
			return time.Time{}
		}
		Eventually(nextEvaluation).Should(Equal(t0.Add(10 * day)))

		// The controller asks to be called back at that instant, not after the
		// (longer) refresh interval.
		r := &PersonaReconciler{Client: k8sClient, Store: store, Clock: personaClock, Recorder: events.NewFakeRecorder(10)}
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "renewing"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.RequeueAfter).To(Equal(10 * day))
		Expect(res.Priority).To(HaveValue(BeNumerically("<", 0)), "a timed pass queues behind the passes data changes ask for")

		// Time passes the crossing: acme's users enter; next, initech renews.
		personaClock.SetTime(t0.Add(10*day + time.Second))
		requestReconcile(ns, "renewing", "window-opened")
		Eventually(func() []string { return storedMembers(ns, "renewing") }).Should(Equal([]string{"u1", "u2", "u3", "u4", "u5"}))
		Eventually(nextEvaluation).Should(Equal(t0.Add(30 * day)))

		personaClock.SetTime(t0.Add(30 * day))
		requestReconcile(ns, "renewing", "initech-renewed")
		Eventually(func() []string { return storedMembers(ns, "renewing") }).Should(Equal([]string{"u1", "u2", "u4", "u5"}))
		Eventually(nextEvaluation).Should(Equal(t0.Add(100*day)), "acme renews next")
	})

	It("keeps membership and makes nobody re-enter across a manager restart", func() {
		Expect(k8sClient.Create(ctx, newPersona(ns, "detractors", "has(user.nps) && user.nps <= 6"))).To(Succeed())
		Eventually(func() []string { return storedMembers(ns, "detractors") }).Should(Equal([]string{"u1", "u3", "u5"}))
		// Slices are written before status: wait for the status of that evaluation.
		Eventually(func() int64 { return fetchPersona(ns, "detractors").Status.TotalEntered }).Should(BeEquivalentTo(3))
		before := fetchPersona(ns, "detractors").Status

		restartManager()
		requestReconcile(ns, "detractors", "after-restart")
		Eventually(func() string { return fetchPersona(ns, "detractors").Status.LastHandledReconcileAt }, "20s").Should(Equal("after-restart"))
		after := fetchPersona(ns, "detractors").Status
		Expect(after.TotalEntered).To(Equal(before.TotalEntered))
		Expect(after.TotalExited).To(Equal(before.TotalExited))
		Expect(after.LastChange.Time.Equal(before.LastChange.Time)).To(BeTrue(), "no new change was recorded")
		Expect(storedMembers(ns, "detractors")).To(Equal([]string{"u1", "u3", "u5"}))
	})

	It("changes nothing when a source fails or is held back", func() {
		Expect(k8sClient.Create(ctx, newPersona(ns, "detractors", "has(user.nps) && user.nps <= 6"))).To(Succeed())
		Eventually(func() []string { return storedMembers(ns, "detractors") }).Should(Equal([]string{"u1", "u3", "u5"}))
		Eventually(func() int64 { return fetchPersona(ns, "detractors").Status.TotalEntered }).Should(BeEquivalentTo(3))

		updateSpec(ns, "users", func(ds *v1alpha1.DataSource) {
			ds.Spec.Inline.Data = "id,account,role,nps,last_login,requests\nu2,acme,x,9,2026-11-21T00:00:00Z,\n"
		})
		Eventually(func() string { return condition(ns, "users", v1alpha1.ReadyCondition) }).Should(Equal("False/SuspiciousShrink"))
		requestReconcile(ns, "detractors", "after-shrink")
		Eventually(func() string { return fetchPersona(ns, "detractors").Status.LastHandledReconcileAt }).Should(Equal("after-shrink"))
		Expect(storedMembers(ns, "detractors")).To(Equal([]string{"u1", "u3", "u5"}))
		Expect(fetchPersona(ns, "detractors").Status.TotalExited).To(BeZero())
	})

	It("rejects a rule that does not type-check at admission, with CEL's message and position", func() {
		for rule, want := range map[string][]string{
			`user.npss <= 6`:                  {"spec.rule", "undefined field 'npss'", "1:5"},
			`user.lastLogin > "2026-01-01"`:   {"spec.rule", "no matching overload for '_>_'"},
			`user.nps <= `:                    {"spec.rule", "Syntax error"},
			`user.nps`:                        {"spec.rule", "must be a bool expression"},
			`account.tier == "enterprise" &&`: {"spec.rule", "Syntax error"},
		} {
			err := k8sClient.Create(ctx, newPersona(ns, "bad", rule))
			Expect(err).To(HaveOccurred(), rule)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			for _, w := range want {
				Expect(err.Error()).To(ContainSubstring(w), rule)
			}
		}
		p := newPersona(ns, "bad-insight", "true")
		p.Spec.Insights = []v1alpha1.InsightSpec{{Name: "x", Type: v1alpha1.InsightSum, Expression: "account.nope"}}
		err := k8sClient.Create(ctx, p)
		Expect(err).To(MatchError(ContainSubstring("spec.insights[0].expression")))
	})

	It("evaluates where spec.evaluation says, with the reason in status, and rejects at admission a rule the database cannot evaluate, with its position", func() {
		// Inline sources: Database is rejected, Auto falls back to memory.
		p := newPersona(ns, "in-db", "user.nps <= 6")
		p.Spec.Evaluation = v1alpha1.EvaluationDatabase
		err := k8sClient.Create(ctx, p)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err).To(MatchError(And(ContainSubstring("spec.evaluation"), ContainSubstring("is not a PostgreSQL source"))))
		p = newPersona(ns, "auto", "user.nps <= 6")
		p.Spec.Evaluation = v1alpha1.EvaluationAuto
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(func() *v1alpha1.EvaluationStatus { return fetchPersona(ns, "auto").Status.Evaluation }).Should(
			PointTo(MatchFields(IgnoreExtras, Fields{"Mode": Equal(v1alpha1.EvaluationInMemory),
				"Reason": ContainSubstring("Auto: cannot be evaluated in the database")})))

		// PostgreSQL sources (never synced here: admission reads specs only).
		pgNS := newNamespace()
		ds := &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: pgNS, Name: "crm"}, Spec: v1alpha1.DataSourceSpec{
			Type:       v1alpha1.DataSourcePostgreSQL,
			Postgres:   &v1alpha1.PostgresSource{DSNSecretRef: v1alpha1.SecretKeySelector{Name: "crm-db", Key: "dsn"}, Query: "SELECT * FROM users"},
			Attributes: []v1alpha1.AttributeMapping{{Name: "nps", Type: v1alpha1.TypeInt}, {Name: "role", Type: v1alpha1.TypeString}}}}
		Expect(k8sClient.Create(ctx, ds)).To(Succeed())
		p = newPersona(pgNS, "regex", `user.nps > 5 && user.role.matches("^c")`)
		p.Spec.Evaluation = v1alpha1.EvaluationDatabase
		err = k8sClient.Create(ctx, p)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err).To(MatchError(And(ContainSubstring("spec.rule"), ContainSubstring(`1:17: user.role.matches("^c")`), ContainSubstring("RE2"))))
		p = newPersona(pgNS, "promoters", `user.nps > 8 && user.role.startsWith("c")`)
		p.Spec.Evaluation = v1alpha1.EvaluationDatabase
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
	})

	It("type-checks Sum, Average, Min and Max insights as numbers, and shows runtime failures in the insight's error", func() {
		p := newPersona(ns, "sum-of-strings", "true")
		p.Spec.Insights = []v1alpha1.InsightSpec{{Name: "roles", Type: v1alpha1.InsightSum, Expression: "user.role"}}
		err := k8sClient.Create(ctx, p)
		Expect(err).To(MatchError(ContainSubstring("spec.insights[0].expression")))
		Expect(err).To(MatchError(ContainSubstring("must be a number (int, uint or double), but it is string")))

		p = newPersona(ns, "dyn-roles", "true")
		p.Spec.Insights = []v1alpha1.InsightSpec{
			{Name: "roles", Type: v1alpha1.InsightAverage, Expression: "dyn(user.role)"},
			{Name: "nps", Type: v1alpha1.InsightMax, Expression: "user.nps"},
		}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(func() []v1alpha1.InsightResult { return fetchPersona(ns, "dyn-roles").Status.Insights }).Should(HaveLen(2))
		in := fetchPersona(ns, "dyn-roles").Status.Insights
		Expect(in[0].Value).To(BeEmpty())
		Expect(in[0].Error).To(MatchRegexp(`^no member has a usable value: \d+ failed \(first: a value of type string is not a number\)$`))
		Expect(in[1].Error).To(BeEmpty())
		Expect(in[1].Value).NotTo(BeEmpty())
	})

	It("reports InvalidRule when a schema change breaks a rule that was accepted", func() {
		Expect(k8sClient.Create(ctx, newPersona(ns, "by-nps", "has(user.nps) && user.nps <= 6"))).To(Succeed())
		Eventually(func() []string { return storedMembers(ns, "by-nps") }).Should(Equal([]string{"u1", "u3", "u5"}))
		updateSpec(ns, "users", func(ds *v1alpha1.DataSource) {
			ds.Spec.Attributes = ds.Spec.Attributes[:1] // nps is no longer declared
		})
		Eventually(func() string { return personaReady(ns, "by-nps") }).Should(Equal("False/InvalidRule"))
		c := meta.FindStatusCondition(fetchPersona(ns, "by-nps").Status.Conditions, v1alpha1.StalledCondition)
		Expect(c.Message).To(ContainSubstring("undefined field 'nps'"))
		Expect(storedMembers(ns, "by-nps")).To(Equal([]string{"u1", "u3", "u5"}), "membership is unchanged")
	})

	It("waits for a DataSource that is not loaded instead of evaluating without it", func() {
		p := newPersona(ns, "p", "true")
		p.Spec.DataSources = []v1alpha1.LocalObjectReference{{Name: "users"}, {Name: "later"}}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(func() string { return personaReady(ns, "p") }).Should(Equal("False/WaitingForSources"))
		Expect(storedMembers(ns, "p")).To(BeEmpty())
	})

	It("keeps slices within sliceSize and writes nothing when nothing changed", func() {
		p := newPersona(ns, "everyone", "true")
		p.Spec.SliceSize = 2
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(func() []string { return storedMembers(ns, "everyone") }).Should(HaveLen(5))
		var slices v1alpha1.PersonaMembershipList
		Expect(k8sClient.List(ctx, &slices, client.InNamespace(ns), client.MatchingLabels{v1alpha1.PersonaLabel: "everyone"})).To(Succeed())
		Expect(slices.Items).To(HaveLen(3))
		for _, s := range slices.Items {
			Expect(len(s.Members)).To(BeNumerically("<=", 2))
			Expect(s.MemberCount).To(BeEquivalentTo(len(s.Members)))
		}
		Eventually(func() int32 { return fetchPersona(ns, "everyone").Status.Slices }).Should(BeEquivalentTo(3))

		var writes atomic.Int32
		counting := countingClient(&writes)
		r := &PersonaReconciler{Client: counting, Store: store, Clock: personaClock, Recorder: events.NewFakeRecorder(10)}
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "everyone"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.RequeueAfter).To(Equal(10 * time.Minute))
		Expect(writes.Load()).To(BeZero(), fmt.Sprintf("a no-op reconcile made %d writes", writes.Load()))
	})
})
