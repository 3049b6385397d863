package controller

import (
	"net/http"
	"net/http/httptest"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

var _ = Describe("DataSource connection guard", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	httpSource := func(name, url string) *v1alpha1.DataSource {
		ds := userSource(ns, name)
		ds.Spec.Type = v1alpha1.DataSourceHTTP
		ds.Spec.HTTP = &v1alpha1.HTTPSource{URL: url}
		return ds
	}

	It("stalls a source whose address is denied, with the policy as the reason and an Event", func() {
		// The cloud metadata endpoint; the suite's policy denies link-local.
		Expect(k8sClient.Create(ctx, httpSource("metadata", "http://169.254.169.254/latest/meta-data/iam/"))).To(Succeed())
		Eventually(func() string { return condition(ns, "metadata", v1alpha1.StalledCondition) }).Should(Equal("True/DestinationDenied"))
		Expect(fetchDS(ns, "metadata").Status.Conditions).To(ContainElement(HaveField("Message",
			ContainSubstring("destination address is in a denied range"))))
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("destination address is in a denied range"))
	})

	It("says only that it could not connect, whatever the port's state", func() {
		srv := httptest.NewServer(http.NotFoundHandler())
		closed := srv.Listener.Addr().String()
		srv.Close()
		Expect(k8sClient.Create(ctx, httpSource("closed", "http://"+closed+"/users"))).To(Succeed())
		Eventually(func() string { return condition(ns, "closed", v1alpha1.ReadyCondition) }).Should(Equal("False/SourceDegraded"))
		status, err := yaml.Marshal(fetchDS(ns, "closed").Status)
		Expect(err).NotTo(HaveOccurred())
		Expect(fetchDS(ns, "closed").Status.Conditions).To(ContainElement(HaveField("Message",
			ContainSubstring("could not connect to "+closed))))
		for _, text := range []string{string(status), eventNotes(ns)} {
			Expect(text).NotTo(ContainSubstring("refused"))
			Expect(text).NotTo(ContainSubstring("dial tcp"))
		}
	})
})
