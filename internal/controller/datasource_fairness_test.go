package controller

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/syncslots"
)

// Issue 13 row 3: the manager runs a few sync workers for the whole cluster
// (4 here, as by default), and a sync may wait up to an hour on a server that
// never answers. One namespace's hanging sources must not hold every worker.
var _ = Describe("Fair sync scheduling across namespaces", func() {
	It("syncs a DataSource of namespace B within 30 s while five sources of namespace A hang", func() {
		var inFlight, peak atomic.Int32
		release := make(chan struct{})
		hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			select { // never answers until the spec ends
			case <-release:
				fmt.Fprint(w, `[]`)
			case <-r.Context().Done():
			}
		}))
		DeferCleanup(func() {
			close(release) // the held syncs end, so later specs have every worker
			hanging.Close()
		})

		nsA, nsB := newNamespace(), newNamespace()
		for i := range 5 {
			ds := userSource(nsA, fmt.Sprintf("hangs-%d", i))
			ds.Spec.Type = v1alpha1.DataSourceHTTP
			ds.Spec.HTTP = &v1alpha1.HTTPSource{URL: hanging.URL}
			ds.Spec.Timeout = &metav1.Duration{Duration: time.Hour}
			Expect(k8sClient.Create(ctx, ds)).To(Succeed())
		}
		// Namespace A's syncs take their slots before B's source exists.
		Eventually(inFlight.Load).Should(BeEquivalentTo(syncslots.DefaultPerNamespace))

		start := time.Now()
		Expect(k8sClient.Create(ctx, inlineCSV(userSource(nsB, "crm"), csvRows(3)))).To(Succeed())
		Eventually(func() string { return condition(nsB, "crm", v1alpha1.ReadyCondition) }, "30s").Should(Equal("True/Succeeded"))
		GinkgoWriter.Printf("namespace B synced %s after its DataSource was created\n", time.Since(start))
		Expect(storeUsers(nsB)).To(Equal([]string{"u1", "u2", "u3"}))

		// A never ran more than its cap at once, and its waiting sources are
		// retried without counting as failures.
		Consistently(inFlight.Load, "2s").Should(BeEquivalentTo(syncslots.DefaultPerNamespace))
		Expect(peak.Load()).To(BeEquivalentTo(syncslots.DefaultPerNamespace))
		Expect(metricValue("persona_datasource_sync_waits_total", nsA, "")).NotTo(BeEmpty())
		for i := range 5 {
			Expect(metricValue("persona_datasource_syncs_total", nsA, fmt.Sprintf("hangs-%d", i))).To(BeEmpty(), "no sync of A ended, none failed")
		}
	})
})
