package controller

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

var _ = Describe("TopValues insights", func() {
	It("count members having a value by default, every occurrence with count: Occurrences, and refuse count on other types", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, personaUsers(ns, `id,account,role,nps,last_login,requests
u1,acme,champion,3,2026-11-20T00:00:00Z,sso;sso;audit_log
u2,acme,champion,9,2026-11-21T00:00:00Z,sso
u3,acme,champion,9,2026-11-21T00:00:00Z,audit_log
`))).To(Succeed())
		p := newPersona(ns, "requests", "true")
		expr := "has(user.requests) ? user.requests : []"
		p.Spec.Insights = []v1alpha1.InsightSpec{
			{Name: "requesters", Type: v1alpha1.InsightTopValues, Expression: expr},
			{Name: "requests", Type: v1alpha1.InsightTopValues, Expression: expr, Count: v1alpha1.InsightCountOccurrences},
		}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(func() []v1alpha1.InsightResult { return fetchPersona(ns, "requests").Status.Insights }).Should(HaveLen(2))
		in := fetchPersona(ns, "requests").Status.Insights
		Expect(in[0].Values).To(Equal([]v1alpha1.InsightValue{{Value: "audit_log", Count: 2}, {Value: "sso", Count: 2}}))
		Expect(in[1].Values).To(Equal([]v1alpha1.InsightValue{{Value: "sso", Count: 3}, {Value: "audit_log", Count: 2}}))

		bad := newPersona(ns, "bad-count", "true")
		bad.Spec.Insights = []v1alpha1.InsightSpec{{Name: "n", Type: v1alpha1.InsightSum, Expression: "user.nps", Count: v1alpha1.InsightCountOccurrences}}
		err := k8sClient.Create(ctx, bad)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err).To(MatchError(ContainSubstring("count: Occurrences applies to TopValues insights only")))
	})
})
