package controller

import (
	"fmt"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/testutil/pgtest"
)

// Incremental PostgreSQL sources against a real PostgreSQL: each spec has its
// own table, named after its namespace.
var _ = Describe("DataSource controller with an incremental PostgreSQL source", Ordered, func() {
	const password = "pg-Incr-Passw0rd"
	var (
		pg    *pgtest.Server
		ns    string
		table string
		syncs int
	)
	BeforeAll(func() {
		var err error
		pg, err = pgtest.Start()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(pg.Stop)
		Expect(pg.Exec(ctx, fmt.Sprintf(`CREATE ROLE reader LOGIN PASSWORD '%s'`, password))).To(Succeed())
	})
	BeforeEach(func() {
		ns = newNamespace()
		table = strings.ReplaceAll(ns, "-", "_")
		for _, sql := range []string{
			`CREATE TABLE ` + table + ` (id text PRIMARY KEY, account text, nps int, role text,
				updated_at timestamptz NOT NULL DEFAULT clock_timestamp(), deleted boolean NOT NULL DEFAULT false)`,
			`INSERT INTO ` + table + ` (id, account, nps, role) SELECT 'u' || g, 'acct-' || (g % 3), 10, 'end_user' FROM generate_series(1, 20) g`,
			`GRANT SELECT ON ` + table + ` TO reader`,
		} {
			Expect(pg.Exec(ctx, sql)).To(Succeed())
		}
	})

	exec := func(sql string) {
		GinkgoHelper()
		Expect(pg.Exec(ctx, strings.ReplaceAll(sql, "$table", table))).To(Succeed())
	}
	// resync asks for a sync now, as `kubectl persona sync` does.
	resync := func() {
		GinkgoHelper()
		syncs++
		annotate(ns, "db", v1alpha1.ReconcileRequestAnnotation, fmt.Sprint(syncs))
		Eventually(func() string { return fetchDS(ns, "db").Status.LastHandledReconcileAt }).Should(Equal(fmt.Sprint(syncs)))
	}
	incStatus := func() v1alpha1.IncrementalStatus {
		if inc := fetchDS(ns, "db").Status.Incremental; inc != nil {
			return *inc
		}
		return v1alpha1.IncrementalStatus{}
	}
	create := func(mutate func(*v1alpha1.DataSource)) {
		GinkgoHelper()
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
			StringData: map[string]string{"dsn": pg.DSN("reader", password, "postgres")}})).To(Succeed())
		ds := userSource(ns, "db")
		ds.Spec.Type = v1alpha1.DataSourcePostgreSQL
		ds.Spec.Postgres = &v1alpha1.PostgresSource{
			DSNSecretRef: v1alpha1.SecretKeySelector{Name: "db", Key: "dsn"},
			Query:        "SELECT id, account, nps, role, updated_at, deleted FROM " + table,
			Incremental:  &v1alpha1.PostgresIncremental{WatermarkColumn: "updated_at", DeletedColumn: "deleted"},
		}
		if mutate != nil {
			mutate(ds)
		}
		Expect(k8sClient.Create(ctx, ds)).To(Succeed())
		Eventually(func() string { return condition(ns, "db", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		Expect(incStatus().LastMode).To(Equal("Full"))
		Expect(incStatus().Watermark).NotTo(BeNil())
		Expect(storeUsers(ns)).To(HaveLen(20))
	}

	It("applies changed rows as upserts after the full load", func() {
		create(nil)
		exec(`UPDATE $table SET nps = 3, updated_at = clock_timestamp() WHERE id = 'u7'`)
		exec(`INSERT INTO $table (id, account, nps, role) VALUES ('u21', 'acct-0', 4, 'admin')`)
		resync()
		Expect(storeAttr(ns, "u7", "nps")).To(BeEquivalentTo(3))
		Expect(storeAttr(ns, "u21", "role")).To(Equal("admin"))
		inc := incStatus()
		Expect(inc.LastMode).To(Equal("Incremental"))
		Expect(inc.LastUpserts).To(BeEquivalentTo(2), "rows re-read through the overlap are not counted")
		Expect(fetchDS(ns, "db").Status.RecordsAccepted).To(BeEquivalentTo(21))
		Expect(condition(ns, "db", v1alpha1.ReadyCondition)).To(Equal("True/Succeeded"))

		By("a sync with nothing new changes nothing")
		resync()
		Expect(incStatus().LastUpserts).To(BeZero())
	})

	It("removes soft-deleted rows, and a full reconcile removes hard-deleted ones", func() {
		create(nil)
		exec(`UPDATE $table SET deleted = true, updated_at = clock_timestamp() WHERE id = 'u2'`)
		exec(`DELETE FROM $table WHERE id = 'u3'`)
		resync()
		Expect(storeUsers(ns)).NotTo(ContainElement("u2"))
		Expect(storeUsers(ns)).To(ContainElement("u3"), "an incremental sync cannot see a hard delete")
		Expect(incStatus().LastDeletes).To(BeEquivalentTo(1))
		Expect(fetchDS(ns, "db").Status.RecordsAccepted).To(BeEquivalentTo(19))

		By("the full reconcile (here: due after a spec change) replaces everything")
		updateSpec(ns, "db", func(ds *v1alpha1.DataSource) {
			ds.Spec.Postgres.Incremental.FullResyncInterval = &metav1.Duration{Duration: time.Hour}
		})
		Eventually(storeUsers).WithArguments(ns).ShouldNot(ContainElement("u3"))
		Expect(storeUsers(ns)).To(HaveLen(18))
		// The store is written before status: wait for the status patch too.
		Eventually(func() string { return incStatus().LastMode }).Should(Equal("Full"))
		Eventually(func() int64 { return fetchDS(ns, "db").Status.RecordsAccepted }).Should(BeEquivalentTo(18))
	})

	It("replaces the lists of a Signal source's users with changed rows", func() {
		create(nil) // the users
		exec(`CREATE TABLE $table_req (user_id text NOT NULL, feature text NOT NULL,
			updated_at timestamptz NOT NULL DEFAULT clock_timestamp(), deleted boolean NOT NULL DEFAULT false)`)
		exec(`INSERT INTO $table_req (user_id, feature) VALUES ('u1', 'sso'), ('u1', 'api'), ('u2', 'sso'), ('u3', 'audit')`)
		exec(`GRANT SELECT ON $table_req TO reader`)
		req := &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "req"}, Spec: v1alpha1.DataSourceSpec{
			Type: v1alpha1.DataSourcePostgreSQL, Entity: v1alpha1.EntitySignal, Key: v1alpha1.RecordKey{UserID: "user_id"},
			Signal:     &v1alpha1.SignalSpec{Attribute: "requests", ValueAttribute: "feature"},
			Attributes: []v1alpha1.AttributeMapping{{Name: "feature", Type: v1alpha1.TypeString}},
			Postgres: &v1alpha1.PostgresSource{
				DSNSecretRef: v1alpha1.SecretKeySelector{Name: "db", Key: "dsn"},
				Query:        "SELECT user_id, feature, updated_at, deleted FROM " + table + "_req",
				Incremental:  &v1alpha1.PostgresIncremental{WatermarkColumn: "updated_at", DeletedColumn: "deleted"},
			},
		}}
		Expect(k8sClient.Create(ctx, req)).To(Succeed())
		Eventually(func() string { return condition(ns, "req", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		Expect(storeAttr(ns, "u1", "requests")).To(ConsistOf("sso", "api"))

		exec(`INSERT INTO $table_req (user_id, feature) VALUES ('u1', 'scim'), ('u4', 'sso')`)
		exec(`UPDATE $table_req SET deleted = true, updated_at = clock_timestamp() WHERE user_id = 'u2'`)
		exec(`UPDATE $table_req SET feature = 'audit_log', updated_at = clock_timestamp() WHERE user_id = 'u3'`)
		annotate(ns, "req", v1alpha1.ReconcileRequestAnnotation, "now")
		Eventually(func() string { return fetchDS(ns, "req").Status.LastHandledReconcileAt }).Should(Equal("now"))
		Expect(fetchDS(ns, "req").Status.Incremental.LastMode).To(Equal("Incremental"))
		Expect(storeAttr(ns, "u1", "requests")).To(ConsistOf("sso", "api", "scim"), "a user's unchanged rows are read with its new one")
		Expect(storeAttr(ns, "u2", "requests")).To(BeNil(), "every row of u2 was soft-deleted")
		Expect(storeAttr(ns, "u3", "requests")).To(ConsistOf("audit_log"))
		Expect(storeAttr(ns, "u4", "requests")).To(ConsistOf("sso"))
		Eventually(func() int64 { return fetchDS(ns, "req").Status.RecordsAccepted }).Should(BeEquivalentTo(5))
	})

	It("holds back a delta that deletes more than maxShrinkPercent, until forced", func() {
		create(func(ds *v1alpha1.DataSource) { ds.Spec.MaxShrinkPercent = 10 })
		watermark := incStatus().Watermark
		exec(`UPDATE $table SET deleted = true, updated_at = clock_timestamp() WHERE id IN ('u1', 'u2', 'u3', 'u4', 'u5')`)
		resync()
		Expect(condition(ns, "db", v1alpha1.ReadyCondition)).To(Equal("False/SuspiciousShrink"))
		Expect(storeUsers(ns)).To(HaveLen(20), "the last good data stays")
		st := fetchDS(ns, "db").Status
		Expect(st.HeldBackRecords).To(BeEquivalentTo(15))
		Expect(st.Incremental.Watermark).To(Equal(watermark), "the watermark stays, so the next sync reads the rows again")

		annotate(ns, "db", v1alpha1.ForceApplyAnnotation, "yes")
		Eventually(func() string { return condition(ns, "db", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		Expect(storeUsers(ns)).To(HaveLen(15))
	})

	It("syncs at once when the database NOTIFYs its channel", func() {
		create(func(ds *v1alpha1.DataSource) { ds.Spec.Postgres.Incremental.NotifyChannel = table })
		// No reconcile request and a 5m interval: only notifications sync. Each
		// is repeated until seen: the listener connects after the first sync.
		for _, id := range []string{"u9", "u10"} {
			exec(`UPDATE $table SET nps = 1, updated_at = clock_timestamp() WHERE id = '` + id + `'`)
			Eventually(func() any {
				exec(`NOTIFY ` + table)
				return storeAttr(ns, id, "nps")
			}).Should(BeEquivalentTo(1))
		}
		// The second change at least came by an incremental sync (the first
		// may race the cache's copy of the first load's status).
		Eventually(func() string { return incStatus().LastMode }).Should(Equal("Incremental"))
		Expect(fetchDS(ns, "db").Status.LastHandledReconcileAt).To(BeEmpty(), "no reconcile was requested")
	})

	It("keeps its personas Ready while it re-syncs", func() {
		create(nil)
		Expect(k8sClient.Create(ctx, newPersona(ns, "low", "user.nps <= 6"))).To(Succeed())
		Eventually(func() string { return personaReady(ns, "low") }).Should(Equal("True/Succeeded"))

		// Watch Ready through every sync below, not only after each.
		seen := map[string]bool{}
		var mu sync.Mutex
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				p := &v1alpha1.Persona{}
				if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "low"}, p); err != nil {
					continue
				}
				if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ReadyCondition); c != nil {
					mu.Lock()
					seen[string(c.Status)+"/"+c.Reason] = true
					mu.Unlock()
				}
			}
		}()
		for i, id := range []string{"u4", "u5", "u6"} {
			exec(`UPDATE $table SET nps = 2, updated_at = clock_timestamp() WHERE id = '` + id + `'`)
			if i == 2 {
				// A full reconcile too, not only deltas.
				updateSpec(ns, "db", func(ds *v1alpha1.DataSource) {
					ds.Spec.Postgres.Incremental.FullResyncInterval = &metav1.Duration{Duration: 2 * time.Hour}
				})
			} else {
				resync()
			}
			Eventually(storedMembers).WithArguments(ns, "low").Should(ContainElement(id))
		}
		close(stop)
		<-done
		Expect(storedMembers(ns, "low")).To(Equal([]string{"u4", "u5", "u6"}))
		Eventually(func() string { return incStatus().LastMode }).Should(Equal("Full"))
		mu.Lock()
		defer mu.Unlock()
		Expect(seen).To(Equal(map[string]bool{"True/Succeeded": true}))
	})
})
