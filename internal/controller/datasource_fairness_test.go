package controller

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
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

// Issue 13 row 2: caps set by the manager's flags that no spec can exceed
// (suiteLimits: 1000 records, 1 MiB responses).
var _ = Describe("Cluster-wide caps", func() {
	It("stalls a source over the record cap keeping its last good data, and lowers maxResponseBytes to the cap", func() {
		var records, noteBytes atomic.Int32
		records.Store(3)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var b strings.Builder
			b.WriteString(`{"data":[`)
			for i := range int(records.Load()) {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"id":"u%d","account":"a","nps":%d,"note":"%s"}`, i+1, i%11, strings.Repeat("x", int(noteBytes.Load())))
			}
			b.WriteString(`]}`)
			fmt.Fprint(w, b.String())
		}))
		DeferCleanup(srv.Close)
		ns := newNamespace()
		ds := userSource(ns, "api")
		ds.Spec.Type = v1alpha1.DataSourceHTTP
		ds.Spec.HTTP = &v1alpha1.HTTPSource{URL: srv.URL, RecordsPath: "data", MaxResponseBytes: 2 << 20}
		Expect(k8sClient.Create(ctx, ds)).To(Succeed())
		Eventually(func() string { return condition(ns, "api", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		Expect(storeUsers(ns)).To(Equal([]string{"u1", "u2", "u3"}))
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("lowered spec.http.maxResponseBytes to 1048576"))

		// 1001 small records: over the record cap.
		records.Store(1001)
		annotate(ns, "api", v1alpha1.ReconcileRequestAnnotation, "more")
		Eventually(func() string { return condition(ns, "api", v1alpha1.StalledCondition) }).Should(Equal("True/LimitExceeded"))
		Expect(meta.FindStatusCondition(fetchDS(ns, "api").Status.Conditions, v1alpha1.ReadyCondition).Message).To(ContainSubstring("more than 1000 records"))
		Expect(storeUsers(ns)).To(Equal([]string{"u1", "u2", "u3"}), "the last good data stays")

		// 600 records of 2 KB (1.2 MB): under the record cap, over the lowered
		// response cap (the spec asked for 2 MiB).
		records.Store(600)
		noteBytes.Store(2000)
		annotate(ns, "api", v1alpha1.ReconcileRequestAnnotation, "bigger")
		Eventually(func() string { return condition(ns, "api", v1alpha1.StalledCondition) }).Should(Equal("True/ResponseTooLarge"))
		Expect(storeUsers(ns)).To(Equal([]string{"u1", "u2", "u3"}))
	})
})
