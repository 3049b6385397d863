package controller

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// csvUsers renders users prefix1..prefixN.
func csvUsers(prefix string, n int) string {
	var b strings.Builder
	b.WriteString("id,account,nps,role\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%s%d,acct,%d,end_user\n", prefix, i, i%11)
	}
	return b.String()
}

// The suite's manager caps a namespace at 1,500 users (suiteLimits): one
// namespace cannot grow the shared store without bound.
var _ = Describe("Cluster-wide cap on users per namespace", func() {
	It("does not apply a sync that would take the namespace past the cap, and keeps the last good data", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, inlineCSV(userSource(ns, "crm"), csvUsers("u", 1000)))).To(Succeed())
		Eventually(func() string { return condition(ns, "crm", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		Expect(storeUsers(ns)).To(HaveLen(1000))

		By("a second source adding 600 users (1,600 > 1,500) is held back")
		Expect(k8sClient.Create(ctx, inlineCSV(userSource(ns, "trials"), csvUsers("t", 600)))).To(Succeed())
		Eventually(func() string { return condition(ns, "trials", v1alpha1.StalledCondition) }).Should(Equal("True/LimitExceeded"))
		Expect(meta.FindStatusCondition(fetchDS(ns, "trials").Status.Conditions, v1alpha1.ReadyCondition).Message).
			To(ContainSubstring("1600 users, over the manager's limit of 1500"))
		Expect(storeUsers(ns)).To(HaveLen(1000), "nothing of the held-back sync is applied")
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("--max-users-per-namespace"))

		By("a change that adds no user still applies (the first source re-synced with other values)")
		updateSpec(ns, "crm", func(ds *v1alpha1.DataSource) {
			ds.Spec.Inline.Data = strings.ReplaceAll(ds.Spec.Inline.Data, "end_user", "admin")
		})
		Eventually(func() any { return storeAttr(ns, "u1", "role") }).Should(BeEquivalentTo("admin"))

		By("once there is room, the held-back source loads")
		updateSpec(ns, "crm", func(ds *v1alpha1.DataSource) { ds.Spec.Inline.Data = csvUsers("u", 800) })
		annotate(ns, "trials", v1alpha1.ReconcileRequestAnnotation, "retry")
		Eventually(func() []string { return storeUsers(ns) }).Should(HaveLen(1400))
		Eventually(func() string { return condition(ns, "trials", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
	})
})
