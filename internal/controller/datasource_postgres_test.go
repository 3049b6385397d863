package controller

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/testutil/pgtest"
)

// A real PostgreSQL, started once for these specs by hack/postgres.sh.
var _ = Describe("DataSource controller with PostgreSQL", Ordered, func() {
	const password = "pg-Secret-Passw0rd"
	var (
		pg *pgtest.Server
		ns string
	)
	BeforeAll(func() {
		var err error
		pg, err = pgtest.Start()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(pg.Stop)
		Expect(pg.Exec(ctx, fmt.Sprintf(`CREATE ROLE reader LOGIN PASSWORD '%s'`, password))).To(Succeed())
		Expect(pg.Exec(ctx, `CREATE TABLE users (id text PRIMARY KEY, account text, nps int, role text)`)).To(Succeed())
		Expect(pg.Exec(ctx, `INSERT INTO users SELECT 'u' || g, 'acct-' || (g % 7), g % 11, 'end_user' FROM generate_series(1, 500) g`)).To(Succeed())
		Expect(pg.Exec(ctx, `GRANT SELECT ON users TO reader`)).To(Succeed())
	})
	BeforeEach(func() { ns = newNamespace() })

	dbSource := func() *v1alpha1.DataSource {
		ds := userSource(ns, "db")
		ds.Spec.Type = v1alpha1.DataSourcePostgreSQL
		ds.Spec.Postgres = &v1alpha1.PostgresSource{
			DSNSecretRef: v1alpha1.SecretKeySelector{Name: "db", Key: "dsn"},
			Query:        "SELECT id, account, nps, role FROM users",
		}
		return ds
	}
	create := func(dsn string) {
		GinkgoHelper()
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
			StringData: map[string]string{"dsn": dsn}})).To(Succeed())
		Expect(k8sClient.Create(ctx, dbSource())).To(Succeed())
	}

	It("streams rows into the profile store", func() {
		create(pg.DSN("reader", password, "postgres"))
		Eventually(func() string { return condition(ns, "db", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		Expect(fetchDS(ns, "db").Status.RecordsAccepted).To(BeEquivalentTo(500))
		Expect(storeUsers(ns)).To(HaveLen(500))
		Expect(storeAttr(ns, "u12", "nps")).To(BeEquivalentTo(1))
		Expect(storeAttr(ns, "u12", "accountId")).To(Equal("acct-5"))
	})

	It("stalls on a wrong password and never reveals the DSN or password", func() {
		const wrong = "Wrong-Passw0rd-xyz"
		create(pg.DSN("reader", wrong, "postgres"))
		Eventually(func() string { return condition(ns, "db", v1alpha1.StalledCondition) }).Should(Equal("True/AuthenticationFailed"))
		Expect(storeUsers(ns)).To(BeEmpty())
		status, err := yaml.Marshal(fetchDS(ns, "db").Status)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("AuthenticationFailed"))
		for what, text := range map[string]string{"status": string(status), "events": eventNotes(ns), "logs": managerLogs.String()} {
			Expect(text).NotTo(ContainSubstring(wrong), "the password leaked into %s", what)
			Expect(text).NotTo(ContainSubstring(password), "the password leaked into %s", what)
			Expect(text).NotTo(ContainSubstring("postgres://"), "the DSN leaked into %s", what)
		}
	})

	It("stalls while its Secret is missing and recovers when it appears", func() {
		Expect(k8sClient.Create(ctx, dbSource())).To(Succeed())
		Eventually(func() string { return condition(ns, "db", v1alpha1.StalledCondition) }).Should(Equal("True/SecretNotFound"))
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
			StringData: map[string]string{"dsn": pg.DSN("reader", password, "postgres")}})).To(Succeed())
		Eventually(func() string { return condition(ns, "db", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		Expect(condition(ns, "db", v1alpha1.StalledCondition)).To(BeEmpty())
	})

	It("stalls on a bad query with the database's reason", func() {
		create(pg.DSN("reader", password, "postgres"))
		Eventually(func() string { return condition(ns, "db", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		updateSpec(ns, "db", func(ds *v1alpha1.DataSource) { ds.Spec.Postgres.Query = "SELECT id FROM no_such_table" })
		Eventually(func() string { return condition(ns, "db", v1alpha1.StalledCondition) }).Should(Equal("True/InvalidQuery"))
		Expect(storeUsers(ns)).To(HaveLen(500), "the last good data stays")
	})
})
