package controller

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// Only a source's first load may hold its personas back: while a routine
// re-sync runs (here: an HTTP server that does not answer the second read
// until told to), the persona evaluates on the last good data and stays Ready.
var _ = Describe("A persona during a re-sync of its source", func() {
	It("stays Ready on the last good data while the source re-reads", func() {
		ns := newNamespace()
		var reads atomic.Int32
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if reads.Add(1) > 1 {
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprint(w, `{"data":[{"id":"u1","account":"a","nps":3},{"id":"u2","account":"a","nps":10}]}`)
		}))
		DeferCleanup(srv.Close)
		DeferCleanup(func() {
			select {
			case <-release:
			default:
				close(release)
			}
		})
		ds := userSource(ns, "api")
		ds.Spec.Type = v1alpha1.DataSourceHTTP
		ds.Spec.HTTP = &v1alpha1.HTTPSource{URL: srv.URL + "/users", RecordsPath: "data"}
		Expect(k8sClient.Create(ctx, ds)).To(Succeed())
		Expect(k8sClient.Create(ctx, newPersona(ns, "detractors", "user.nps <= 6"))).To(Succeed())
		Eventually(func() string { return personaReady(ns, "detractors") }).Should(Equal("True/Succeeded"))
		Expect(storedMembers(ns, "detractors")).To(Equal([]string{"u1"}))

		By("a re-sync hangs on the server; the persona evaluates meanwhile")
		annotate(ns, "api", v1alpha1.ReconcileRequestAnnotation, "resync")
		Eventually(reads.Load).Should(BeNumerically(">=", 2))
		requestReconcile(ns, "detractors", "during-resync")
		Eventually(func() string { return fetchPersona(ns, "detractors").Status.LastHandledReconcileAt }).Should(Equal("during-resync"))
		Expect(personaReady(ns, "detractors")).To(Equal("True/Succeeded"))
		Expect(storedMembers(ns, "detractors")).To(Equal([]string{"u1"}))

		By("the re-sync completes")
		close(release)
		Eventually(func() string { return fetchDS(ns, "api").Status.LastHandledReconcileAt }).Should(Equal("resync"))
		Consistently(func() string { return personaReady(ns, "detractors") }, "1s").Should(Equal("True/Succeeded"))
	})
})
