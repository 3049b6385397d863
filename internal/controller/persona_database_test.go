package controller

import (
	"fmt"
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
	"github.com/usersuccess/persona-operator/internal/testutil/pgtest"
)

// Personas evaluated inside a real PostgreSQL (spec.evaluation Database)
// beside the same personas evaluated in memory over the same sources.
var _ = Describe("Persona controller evaluating in the database", Ordered, func() {
	const password = "pg-Persona-Passw0rd"
	var (
		pg *pgtest.Server
		ns string
		t0 = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	)
	day := 24 * time.Hour
	BeforeAll(func() {
		var err error
		pg, err = pgtest.Start()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(pg.Stop)
		for _, sql := range []string{
			fmt.Sprintf(`CREATE ROLE reader LOGIN PASSWORD '%s'`, password),
			`CREATE TABLE users (id text, account text, nps int8, role text)`,
			`INSERT INTO users SELECT 'u' || g, CASE WHEN g % 13 = 0 THEN NULL ELSE 'a' || (g % 5) END,
			        CASE WHEN g % 7 = 0 THEN NULL ELSE g % 11 END, (ARRAY['champion', 'end_user', 'é'])[g % 3 + 1]
			   FROM generate_series(1, 400) g`,
			`CREATE TABLE accounts (id text, tier text, renewal timestamptz)`,
			fmt.Sprintf(`INSERT INTO accounts VALUES ('a0', 'enterprise', '%s'), ('a1', 'smb', '%s'), ('a2', 'enterprise', NULL),
			        ('a3', NULL, '%s')`, t0.Add(100*day).Format(time.RFC3339), t0.Add(30*day).Format(time.RFC3339),
				t0.Add(200*day).Format(time.RFC3339)),
			`GRANT SELECT ON users, accounts TO reader`,
		} {
			Expect(pg.Exec(ctx, sql)).To(Succeed(), sql)
		}
	})
	BeforeEach(func() {
		ns = newNamespace()
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
			StringData: map[string]string{"dsn": pg.DSN("reader", password, "postgres")}})).To(Succeed())
		pgSource := func(name, query string, entity v1alpha1.Entity, key v1alpha1.RecordKey, attrs ...v1alpha1.AttributeMapping) {
			Expect(k8sClient.Create(ctx, &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: v1alpha1.DataSourceSpec{Type: v1alpha1.DataSourcePostgreSQL, Entity: entity, Key: key, Attributes: attrs,
					Postgres: &v1alpha1.PostgresSource{DSNSecretRef: v1alpha1.SecretKeySelector{Name: "db", Key: "dsn"}, Query: query}}})).To(Succeed())
		}
		pgSource("users", "SELECT id, account, nps, role FROM users", v1alpha1.EntityUser, v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
			v1alpha1.AttributeMapping{Name: "nps", Type: v1alpha1.TypeInt}, v1alpha1.AttributeMapping{Name: "role", Type: v1alpha1.TypeString})
		pgSource("accounts", "SELECT id, tier, renewal FROM accounts", v1alpha1.EntityAccount, v1alpha1.RecordKey{AccountID: "id"},
			v1alpha1.AttributeMapping{Name: "tier", Type: v1alpha1.TypeString},
			v1alpha1.AttributeMapping{Name: "renewalDate", From: "renewal", Type: v1alpha1.TypeTimestamp})
		for _, name := range []string{"users", "accounts"} {
			Eventually(func() string { return condition(ns, name, v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		}
	})

	// members reads a persona's slices as "user account" pairs, and checks
	// each slice holds at most max members.
	members := func(name string, max int) []string {
		GinkgoHelper()
		var list v1alpha1.PersonaMembershipList
		Expect(k8sClient.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.PersonaLabel: name})).To(Succeed())
		var out []string
		for _, s := range list.Items {
			Expect(len(s.Members)).To(BeNumerically("<=", max))
			for _, m := range s.Members {
				out = append(out, m.UserID+" "+m.AccountID)
			}
		}
		sort.Strings(out)
		return out
	}
	create := func(name, rule string, mode v1alpha1.EvaluationMode, size int32, insights ...v1alpha1.InsightSpec) {
		GinkgoHelper()
		p := newPersona(ns, name, rule)
		p.Spec.Evaluation, p.Spec.SliceSize, p.Spec.Insights = mode, size, insights
		p.Spec.RefreshInterval = &metav1.Duration{Duration: 1000 * time.Hour}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
	}
	inDatabase := PointTo(MatchFields(IgnoreExtras, Fields{"Mode": Equal(v1alpha1.EvaluationDatabase),
		"Reason": Equal("Database: the rule translates to SQL exactly")}))

	It("writes the slices the in-memory evaluation writes, and follows changes of the data", func() {
		const rule = `has(user.nps) && user.nps <= 6 && (account.tier == "enterprise" || user.role >= "d")`
		personaClock.SetTime(t0)
		insights := []v1alpha1.InsightSpec{
			{Name: "roles", Type: v1alpha1.InsightTopValues, Expression: "user.role", Limit: 2},
			{Name: "tiers", Type: v1alpha1.InsightTopValues, Expression: "account.tier"},
			{Name: "nps", Type: v1alpha1.InsightSum, Expression: "user.nps"},
			{Name: "avg", Type: v1alpha1.InsightAverage, Expression: "user.nps"},
			{Name: "lo", Type: v1alpha1.InsightMin, Expression: "user.nps"},
			{Name: "scaled", Type: v1alpha1.InsightMax, Expression: "double(user.nps) * 1.5"},
		}
		create("in-memory", rule, v1alpha1.EvaluationInMemory, 25, insights...)
		create("in-db", rule, v1alpha1.EvaluationDatabase, 25, insights...)
		Eventually(func() string { return personaReady(ns, "in-db") }).Should(Equal("True/Succeeded"))
		Eventually(func() string { return personaReady(ns, "in-memory") }).Should(Equal("True/Succeeded"))
		Expect(fetchPersona(ns, "in-db").Status.Evaluation).To(inDatabase)
		want := members("in-memory", 25)
		Expect(len(want)).To(BeNumerically(">", 100), "several slices' worth")
		Expect(members("in-db", 25)).To(Equal(want))
		db, mem := fetchPersona(ns, "in-db").Status, fetchPersona(ns, "in-memory").Status
		Expect(db.Members).To(Equal(mem.Members))
		Expect(db.SampleMembers).To(Equal(mem.SampleMembers))
		Expect(db.TotalEntered).To(Equal(mem.TotalEntered))
		Expect(db.Slices).To(BeNumerically(">=", 5))
		By("insights as SQL aggregates: those translated equal the in-memory ones, the others say why not")
		Expect(db.Insights).To(HaveLen(6))
		Expect(db.Insights[:5]).To(Equal(mem.Insights[:5]))
		Expect(db.Insights[0].Values).NotTo(BeEmpty())
		Expect(db.Insights[5].Error).To(ContainSubstring("not computed in the database"))
		Expect(mem.Insights[5].Value).NotTo(BeEmpty())

		By("churn in the database: both evaluations follow it, the database's without a sync")
		Expect(pg.Exec(ctx, `UPDATE users SET nps = 10 WHERE id IN ('u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u40')`)).To(Succeed())
		Expect(pg.Exec(ctx, `UPDATE users SET nps = 0, account = 'a0' WHERE id IN ('u77', 'u99', 'u130', 'u260')`)).To(Succeed())
		DeferCleanup(func() { // the next specs see the table as created
			Expect(pg.Exec(ctx, `UPDATE users SET nps = CASE WHEN substr(id, 2)::int % 7 = 0 THEN NULL ELSE substr(id, 2)::int % 11 END,
				account = CASE WHEN substr(id, 2)::int % 13 = 0 THEN NULL ELSE 'a' || (substr(id, 2)::int % 5) END`)).To(Succeed())
		})
		requestReconcile(ns, "in-db", "churn")
		Eventually(func() []string { return members("in-db", 25) }).ShouldNot(Equal(want))
		annotate(ns, "users", v1alpha1.ReconcileRequestAnnotation, "churn")
		requestReconcile(ns, "in-memory", "churn")
		Eventually(func() []string { return members("in-memory", 25) }).ShouldNot(Equal(want))
		// Both sides are read at each poll: the in-memory one may take two passes.
		Eventually(func(g Gomega) {
			g.Expect(members("in-db", 25)).To(Equal(members("in-memory", 25)))
			g.Expect(fetchPersona(ns, "in-db").Status.Members).To(Equal(fetchPersona(ns, "in-memory").Status.Members))
		}).Should(Succeed())
	})

	It("requeues a relative-time rule at the next crossing, computed in the database", func() {
		personaClock.SetTime(t0)
		create("renewing", `account.renewalDate - now <= duration("2160h") && account.renewalDate > now`, v1alpha1.EvaluationDatabase, 0)
		Eventually(func() string { return personaReady(ns, "renewing") }).Should(Equal("True/Succeeded"))
		Expect(fetchPersona(ns, "renewing").Status.Evaluation).To(inDatabase)
		accountsOf := func() map[string]bool {
			out := map[string]bool{}
			for _, m := range members("renewing", 1000) {
				var id, acct string
				_, _ = fmt.Sscan(m, &id, &acct)
				out[acct] = true
			}
			return out
		}
		Expect(accountsOf()).To(Equal(map[string]bool{"a1": true}))
		nextEvaluation := func() time.Time {
			if t := fetchPersona(ns, "renewing").Status.NextEvaluationTime; t != nil {
				return t.UTC()
			}
			return time.Time{}
		}
		// a0 enters the 90-day window at t0+10d.
		Eventually(nextEvaluation).Should(Equal(t0.Add(10 * day)))
		r := &PersonaReconciler{Client: k8sClient, Store: store, Clock: personaClock, Recorder: events.NewFakeRecorder(10)}
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "renewing"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.RequeueAfter).To(Equal(10*day), "the next crossing, not the 1000 h refresh")

		personaClock.SetTime(t0.Add(10*day + time.Second))
		requestReconcile(ns, "renewing", "window-opened")
		Eventually(accountsOf).Should(Equal(map[string]bool{"a0": true, "a1": true}))
		Eventually(nextEvaluation).Should(Equal(t0.Add(30*day)), "a1 renews next")

		personaClock.SetTime(t0.Add(30 * day))
		requestReconcile(ns, "renewing", "a1-renewed")
		Eventually(accountsOf).Should(Equal(map[string]bool{"a0": true}))
		Eventually(nextEvaluation).Should(Equal(t0.Add(100*day)), "a0 renews next")
	})

	It("reads DataSources never loaded into memory (spec.load None); an in-memory persona over them is refused", func() {
		const rule = `has(user.nps) && user.nps <= 6 && account.tier == "enterprise"`
		create("mem", rule, v1alpha1.EvaluationInMemory, 0)
		Eventually(func() string { return personaReady(ns, "mem") }).Should(Equal("True/Succeeded"))
		want := members("mem", 1000)
		Expect(want).NotTo(BeEmpty())

		for _, name := range []string{"users", "accounts"} {
			updateSpec(ns, name, func(ds *v1alpha1.DataSource) { ds.Spec.Load = v1alpha1.LoadNone })
		}
		for _, name := range []string{"users", "accounts"} {
			Eventually(func() string { return condition(ns, name, v1alpha1.ReadyCondition) }).Should(Equal("True/" + v1alpha1.ReasonNotLoaded))
			Eventually(func() bool { _, _, ok := store.Namespace(ns).Loaded(name); return ok }).Should(BeFalse(), "dropped from memory")
		}
		ds := &v1alpha1.DataSource{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "users"}, ds)).To(Succeed())
		Expect(ds.Status.RecordsAccepted).To(BeZero())
		Expect(conditionMessage(ds.Status.Conditions, v1alpha1.ReadyCondition)).To(
			ContainSubstring("spec.load is None: not loaded into the manager's memory"))

		By("a persona evaluated in the database reads them where they live")
		create("db", rule, v1alpha1.EvaluationDatabase, 0)
		Eventually(func() string { return personaReady(ns, "db") }).Should(Equal("True/Succeeded"))
		Expect(fetchPersona(ns, "db").Status.Evaluation).To(inDatabase)
		Expect(members("db", 1000)).To(Equal(want))

		By("the in-memory persona stalls with the reason, its membership kept")
		requestReconcile(ns, "mem", "not-loaded")
		Eventually(func() string { return personaReady(ns, "mem") }).Should(Equal("False/" + v1alpha1.ReasonSourceNotLoaded))
		p := fetchPersona(ns, "mem")
		Expect(cluster.Condition(p.Status.Conditions, v1alpha1.StalledCondition)).To(Equal("True/" + v1alpha1.ReasonSourceNotLoaded))
		Expect(conditionMessage(p.Status.Conditions, v1alpha1.StalledCondition)).To(
			ContainSubstring("DataSources accounts, users have spec.load None"))
		Expect(members("mem", 1000)).To(Equal(want))
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("cannot be evaluated (explained, previewed) in memory"))

		By("a query the database refuses stalls the DataSource, with its reason")
		updateSpec(ns, "users", func(ds *v1alpha1.DataSource) { ds.Spec.Postgres.Query = "SELECT id, account, nps, role FROM nowhere" })
		Eventually(func() string { return condition(ns, "users", v1alpha1.ReadyCondition) }).Should(HavePrefix("False/"))
		updateSpec(ns, "users", func(ds *v1alpha1.DataSource) { ds.Spec.Postgres.Query = "SELECT account, nps, role FROM users" })
		Eventually(func() string { return condition(ns, "users", v1alpha1.StalledCondition) }).Should(Equal("True/" + v1alpha1.ReasonInvalidSpec))
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "users"}, ds)).To(Succeed())
		Expect(conditionMessage(ds.Status.Conditions, v1alpha1.StalledCondition)).To(ContainSubstring("the query returns no key column id"))
	})

	It("falls back to memory under Auto when a query's column does not convert exactly", func() {
		// A text column read as an Int: the translation over the described
		// columns is refused.
		updateSpec(ns, "users", func(ds *v1alpha1.DataSource) {
			ds.Spec.Postgres.Query = "SELECT id, account, nps::text AS nps, role FROM users"
		})
		create("auto", `user.role == "champion"`, v1alpha1.EvaluationAuto, 0)
		Eventually(func() *v1alpha1.EvaluationStatus { return fetchPersona(ns, "auto").Status.Evaluation }).Should(
			PointTo(MatchFields(IgnoreExtras, Fields{"Mode": Equal(v1alpha1.EvaluationInMemory),
				"Reason": ContainSubstring("Auto: cannot be evaluated in the database")})))

	})

	It("fails clearly, keeping its slices, when the database refuses it", func() {
		create("db-down", `user.role == "champion"`, v1alpha1.EvaluationDatabase, 0)
		Eventually(func() string { return personaReady(ns, "db-down") }).Should(Equal("True/Succeeded"))
		Expect(fetchPersona(ns, "db-down").Status.Evaluation).To(inDatabase)
		before := members("db-down", 1000)
		secret := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "db"}, secret)).To(Succeed())
		secret.Data = map[string][]byte{"dsn": []byte(pg.DSN("reader", "Wrong-Passw0rd-abc", "postgres"))}
		Expect(k8sClient.Update(ctx, secret)).To(Succeed())
		requestReconcile(ns, "db-down", "down")
		Eventually(func() string { return personaReady(ns, "db-down") }).Should(Equal("False/" + v1alpha1.ReasonSourceDegraded))
		p := fetchPersona(ns, "db-down")
		Expect(cluster.Condition(p.Status.Conditions, v1alpha1.ReadyCondition)).To(Equal("False/SourceDegraded"))
		Expect(members("db-down", 1000)).To(Equal(before))
		Expect(fmt.Sprint(p.Status)).NotTo(ContainSubstring("Wrong-Passw0rd-abc"))
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("evaluating in the database failed"))
		Expect(eventNotes(ns)).NotTo(ContainSubstring("Wrong-Passw0rd-abc"))
	})
})
