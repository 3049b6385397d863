package controller

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

var _ = Describe("Events DataSource", func() {
	// The suite's manager has no event store: an Events source says so
	// instead of failing silently (docs/events.md).
	It("stalls with EventsDisabled on a manager without an event store", func() {
		ns := newNamespace()
		ds := userSource(ns, "product")
		ds.Spec.Type = v1alpha1.DataSourceEvents
		ds.Spec.Inline = nil
		ds.Spec.Events = &v1alpha1.EventsSource{WriteKeySecretRef: v1alpha1.SecretKeySelector{Name: "segment", Key: "writeKey"},
			Aggregates: []v1alpha1.EventAggregate{{Name: "logins", Function: v1alpha1.AggregateCount, Event: "login", Window: "30d"}}}
		Expect(k8sClient.Create(ctx, ds)).To(Succeed())
		Eventually(func() string { return condition(ns, "product", v1alpha1.StalledCondition) }).Should(Equal("True/EventsDisabled"))
		Expect(fetchDS(ns, "product").Status.Conditions).To(ContainElement(HaveField("Message",
			ContainSubstring("--events-database-dsn-file"))))
	})
})
