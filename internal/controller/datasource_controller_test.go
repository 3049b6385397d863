package controller

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
)

// userSource is a User DataSource of id, account, nps and role.
func userSource(ns, name string) *v1alpha1.DataSource {
	return &v1alpha1.DataSource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.DataSourceSpec{
			Type: v1alpha1.DataSourceInline,
			Key:  v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
			Attributes: []v1alpha1.AttributeMapping{
				{Name: "nps", Type: v1alpha1.TypeInt},
				{Name: "role", Type: v1alpha1.TypeString},
			},
		},
	}
}

func inlineCSV(ds *v1alpha1.DataSource, data string) *v1alpha1.DataSource {
	ds.Spec.Inline = &v1alpha1.InlineSource{Format: v1alpha1.FormatCSV, Data: data}
	return ds
}

// csvRows renders n users u1..un.
func csvRows(n int) string {
	var b strings.Builder
	b.WriteString("id,account,nps,role\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "u%d,acct-%d,%d,end_user\n", i, i%3, i%11)
	}
	return b.String()
}

func fetchDS(ns, name string) *v1alpha1.DataSource {
	GinkgoHelper()
	ds := &v1alpha1.DataSource{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, ds)).To(Succeed())
	return ds
}

// condition returns a condition's "Status/Reason", or "" when absent.
func condition(ns, name, typ string) string {
	return cluster.Condition(fetchDS(ns, name).Status.Conditions, typ)
}

// storeUsers returns the profile ids of a namespace, sorted.
func storeUsers(ns string) []string {
	var ids []string
	store.Namespace(ns).Read(nil, func(v *profile.View) { ids = v.UserIDs() })
	return ids
}

func storeAttr(ns, uid, name string) any {
	var out any
	store.Namespace(ns).Read(nil, func(v *profile.View) {
		if u, ok := v.User(uid); ok {
			out, _ = u.Get(name)
		}
		if rv, ok := out.(ref.Val); ok {
			out, _ = attr.FromCEL(rv)
		}
	})
	return out
}

func annotate(ns, name, key, value string) {
	GinkgoHelper()
	ds := fetchDS(ns, name)
	patch := client.MergeFrom(ds.DeepCopy())
	if ds.Annotations == nil {
		ds.Annotations = map[string]string{}
	}
	ds.Annotations[key] = value
	Expect(k8sClient.Patch(ctx, ds, patch)).To(Succeed())
}

func updateSpec(ns, name string, mutate func(*v1alpha1.DataSource)) {
	GinkgoHelper()
	ds := fetchDS(ns, name)
	patch := client.MergeFrom(ds.DeepCopy())
	mutate(ds)
	Expect(k8sClient.Patch(ctx, ds, patch)).To(Succeed())
}

// eventNotes returns every Event note about objects in the namespace.
func eventNotes(ns string) string {
	GinkgoHelper()
	var list eventsv1.EventList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var b strings.Builder
	for _, e := range list.Items {
		b.WriteString(e.Reason + ": " + e.Note + "\n")
	}
	return b.String()
}

var _ = Describe("DataSource controller", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("syncs inline CSV into the profile store and reports it in status", func() {
		Expect(k8sClient.Create(ctx, inlineCSV(userSource(ns, "crm"), csvRows(3)))).To(Succeed())
		Eventually(func() string { return condition(ns, "crm", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))

		ds := fetchDS(ns, "crm")
		Expect(ds.Status.ObservedGeneration).To(Equal(ds.Generation))
		Expect(ds.Status.RecordsAccepted).To(BeEquivalentTo(3))
		Expect(ds.Status.RecordsRejected).To(BeZero())
		Expect(ds.Status.Digest).To(HavePrefix("xxh64:"))
		Expect(ds.Status.LastSuccessfulSyncTime).NotTo(BeNil())
		Expect(ds.Status.LastSyncDuration).NotTo(BeNil())
		Expect(storeUsers(ns)).To(Equal([]string{"u1", "u2", "u3"}))
		Expect(storeAttr(ns, "u2", "nps")).To(BeEquivalentTo(2))
		Expect(storeAttr(ns, "u2", "accountId")).To(Equal("acct-2"))
	})

	It("rejects malformed records, counts them, and never reports their values", func() {
		data := "id,account,nps,role\nu1,a,9,champion\nu2,a,SECRET-VALUE-42,end_user\nu3,a,1\n,a,3,x\n"
		Expect(k8sClient.Create(ctx, inlineCSV(userSource(ns, "crm"), data))).To(Succeed())
		Eventually(func() string { return condition(ns, "crm", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))

		st := fetchDS(ns, "crm").Status
		Expect(st.RecordsAccepted).To(BeEquivalentTo(1))
		Expect(st.RecordsRejected).To(BeEquivalentTo(3))
		Expect(st.Rejections).To(HaveLen(3))
		Expect(st.Rejections[0].Record).To(BeEquivalentTo(2))
		Expect(st.Rejections[0].Reason).To(ContainSubstring(`attribute "nps"`))
		Expect(st.Rejections[2].Reason).To(ContainSubstring("user id"))
		out, err := yaml.Marshal(st)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(out)).NotTo(ContainSubstring("SECRET-VALUE-42"))
		Expect(managerLogs.String()).NotTo(ContainSubstring("SECRET-VALUE-42"))
	})

	It("reads a ConfigMap, stalls while it is missing, and follows its changes", func() {
		ds := userSource(ns, "crm")
		ds.Spec.Inline = &v1alpha1.InlineSource{Format: v1alpha1.FormatCSV,
			ConfigMapRef: &v1alpha1.ConfigMapKeySelector{Name: "users", Key: "users.csv"}}
		Expect(k8sClient.Create(ctx, ds)).To(Succeed())
		Eventually(func() string { return condition(ns, "crm", v1alpha1.StalledCondition) }).Should(Equal("True/ConfigMapNotFound"))
		Expect(condition(ns, "crm", v1alpha1.ReadyCondition)).To(Equal("False/ConfigMapNotFound"))

		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "users"}, Data: map[string]string{"users.csv": csvRows(2)}}
		Expect(k8sClient.Create(ctx, cm)).To(Succeed())
		Eventually(func() string { return condition(ns, "crm", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		Expect(condition(ns, "crm", v1alpha1.StalledCondition)).To(BeEmpty())
		Expect(storeUsers(ns)).To(HaveLen(2))

		cm.Data["users.csv"] = csvRows(3)
		Expect(k8sClient.Update(ctx, cm)).To(Succeed())
		Eventually(storeUsers).WithArguments(ns).Should(HaveLen(3))
		Eventually(func() int64 { return fetchDS(ns, "crm").Status.RecordsAccepted }).Should(BeEquivalentTo(3))
	})

	It("holds back an empty or shrunken result until a person forces it", func() {
		Expect(k8sClient.Create(ctx, inlineCSV(userSource(ns, "crm"), csvRows(4)))).To(Succeed())
		Eventually(storeUsers).WithArguments(ns).Should(HaveLen(4))

		By("shrinking by 75% with the default maxShrinkPercent of 50")
		updateSpec(ns, "crm", func(ds *v1alpha1.DataSource) { ds.Spec.Inline.Data = csvRows(1) })
		Eventually(func() string { return condition(ns, "crm", v1alpha1.ReadyCondition) }).Should(Equal("False/SuspiciousShrink"))
		st := fetchDS(ns, "crm").Status
		Expect(st.RecordsAccepted).To(BeEquivalentTo(4))
		Expect(st.HeldBackRecords).To(BeEquivalentTo(1))
		Expect(storeUsers(ns)).To(HaveLen(4), "the last good data stays")
		// The Event is recorded after the status patch: wait for it.
		Eventually(eventNotes).WithArguments(ns).Should(ContainSubstring("SuspiciousShrink"))

		By("forcing it with the force-apply annotation")
		annotate(ns, "crm", v1alpha1.ForceApplyAnnotation, "checked-1")
		Eventually(func() string { return condition(ns, "crm", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		Expect(storeUsers(ns)).To(Equal([]string{"u1"}))
		Expect(fetchDS(ns, "crm").Status.LastHandledForceApply).To(Equal("checked-1"))

		By("returning nothing")
		updateSpec(ns, "crm", func(ds *v1alpha1.DataSource) { ds.Spec.Inline.Data = "id,account,nps,role\n" })
		Eventually(func() string { return condition(ns, "crm", v1alpha1.ReadyCondition) }).Should(Equal("False/EmptyResult"))
		Expect(storeUsers(ns)).To(Equal([]string{"u1"}))
	})

	It("syncs again when a reconcile is requested by annotation", func() {
		Expect(k8sClient.Create(ctx, inlineCSV(userSource(ns, "crm"), csvRows(2)))).To(Succeed())
		Eventually(func() string { return condition(ns, "crm", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		annotate(ns, "crm", v1alpha1.ReconcileRequestAnnotation, "2026-11-23T00:00:00Z")
		Eventually(func() string { return fetchDS(ns, "crm").Status.LastHandledReconcileAt }).Should(Equal("2026-11-23T00:00:00Z"))
	})

	It("makes no API write when a reconcile has nothing to do", func() {
		Expect(k8sClient.Create(ctx, inlineCSV(userSource(ns, "crm"), csvRows(2)))).To(Succeed())
		Eventually(func() string { return condition(ns, "crm", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))

		var writes atomic.Int32
		counting := countingClient(&writes)
		r := &DataSourceReconciler{Client: counting, APIReader: k8sClient, Store: store, Clock: clock.RealClock{}, Recorder: events.NewFakeRecorder(10)}
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "crm"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(writes.Load()).To(BeZero())
		Expect(res.RequeueAfter).To(BeNumerically(">", 4*time.Minute), "next periodic sync of the 5m interval")
	})

	It("sets Stale when the last good data is older than maxStaleness", func() {
		ds := inlineCSV(userSource(ns, "crm"), csvRows(2))
		ds.Spec.MaxStaleness = &metav1.Duration{Duration: 2 * time.Second}
		Expect(k8sClient.Create(ctx, ds)).To(Succeed())
		Eventually(func() string { return condition(ns, "crm", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		Eventually(func() string { return condition(ns, "crm", v1alpha1.StaleCondition) }, "10s").Should(Equal("True/DataStale"))
		// The condition as a series, for alerts.
		Eventually(metricValue).WithArguments("persona_datasource_stale", ns, "crm").Should(Equal("1"))
		last := fetchDS(ns, "crm").Status.LastSuccessfulSyncTime.Unix()
		Expect(metricValue("persona_datasource_last_success_timestamp_seconds", ns, "crm")).To(Equal(fmt.Sprint(last)))
	})

	It("removes a deleted DataSource's data from the store, and its metric series", func() {
		Expect(k8sClient.Create(ctx, inlineCSV(userSource(ns, "crm"), csvRows(2)))).To(Succeed())
		Eventually(storeUsers).WithArguments(ns).Should(HaveLen(2))
		Eventually(metricValue).WithArguments("persona_datasource_stale", ns, "crm").Should(Equal("0"))
		Expect(metricValue("persona_datasource_syncs_total", ns, "crm")).NotTo(BeEmpty())
		Expect(k8sClient.Delete(ctx, fetchDS(ns, "crm"))).To(Succeed())
		Eventually(storeUsers).WithArguments(ns).Should(BeEmpty())
		for _, m := range []string{"persona_datasource_stale", "persona_datasource_syncs_total", "persona_datasource_records"} {
			Eventually(metricValue).WithArguments(m, ns, "crm").Should(BeEmpty(), m)
		}
	})

	It("stalls on an attribute mapping the store cannot use", func() {
		ds := inlineCSV(userSource(ns, "crm"), csvRows(2))
		ds.Spec.Attributes = append(ds.Spec.Attributes, v1alpha1.AttributeMapping{Name: "domain", Type: v1alpha1.TypeString, Expression: "record.email.split("})
		Expect(k8sClient.Create(ctx, ds)).To(Succeed())
		Eventually(func() string { return condition(ns, "crm", v1alpha1.StalledCondition) }).Should(Equal("True/InvalidAttributes"))
		Expect(meta.FindStatusCondition(fetchDS(ns, "crm").Status.Conditions, v1alpha1.ReadyCondition).Message).To(ContainSubstring("spec.attributes[2] (domain): expression"))
	})

	Context("HTTP", func() {
		const token = "tok-very-secret-123"
		var (
			srv  *httptest.Server
			mode atomic.Value // "ok", "500", "401"
		)
		BeforeEach(func() {
			mode.Store("ok")
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case mode.Load() == "500":
					http.Error(w, "upstream exploded", http.StatusInternalServerError)
				case mode.Load() == "401" || r.Header.Get("Authorization") != "Bearer "+token:
					http.Error(w, "bad token", http.StatusUnauthorized)
				default:
					fmt.Fprint(w, `{"data":[{"id":"u1","account":"a","nps":3},{"id":"u2","account":"a","nps":10}]}`)
				}
			}))
			DeferCleanup(srv.Close)
			Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
				StringData: map[string]string{"token": token}})).To(Succeed())
			ds := userSource(ns, "api")
			ds.Spec.Type = v1alpha1.DataSourceHTTP
			ds.Spec.HTTP = &v1alpha1.HTTPSource{URL: srv.URL + "/users?api_key=" + token, RecordsPath: "data",
				BearerTokenSecretRef: &v1alpha1.SecretKeySelector{Name: "api", Key: "token"}}
			Expect(k8sClient.Create(ctx, ds)).To(Succeed())
			Eventually(func() string { return condition(ns, "api", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
			Expect(storeUsers(ns)).To(Equal([]string{"u1", "u2"}))
		})

		It("keeps the last good data when the server fails, and stalls on a rejected token, never leaking it", func() {
			mode.Store("500")
			annotate(ns, "api", v1alpha1.ReconcileRequestAnnotation, "500")
			Eventually(func() string { return condition(ns, "api", v1alpha1.ReadyCondition) }).Should(Equal("False/SourceDegraded"))
			Expect(storeUsers(ns)).To(Equal([]string{"u1", "u2"}))
			Expect(fetchDS(ns, "api").Status.RecordsAccepted).To(BeEquivalentTo(2))

			mode.Store("401")
			annotate(ns, "api", v1alpha1.ReconcileRequestAnnotation, "401")
			Eventually(func() string { return condition(ns, "api", v1alpha1.StalledCondition) }).Should(Equal("True/AuthenticationFailed"))
			Expect(storeUsers(ns)).To(Equal([]string{"u1", "u2"}))

			status, err := yaml.Marshal(fetchDS(ns, "api").Status)
			Expect(err).NotTo(HaveOccurred())
			Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("AuthenticationFailed"))
			for what, text := range map[string]string{"status": string(status), "events": eventNotes(ns), "logs": managerLogs.String()} {
				Expect(text).NotTo(ContainSubstring(token), "the token leaked into %s", what)
			}
		})

		It("fails a sync that exceeds spec.timeout without touching the data", func() {
			slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-time.After(5 * time.Second):
				case <-r.Context().Done():
				}
			}))
			DeferCleanup(slow.Close)
			updateSpec(ns, "api", func(ds *v1alpha1.DataSource) {
				ds.Spec.HTTP.URL = slow.URL
				ds.Spec.Timeout = &metav1.Duration{Duration: time.Second}
			})
			Eventually(func() string { return condition(ns, "api", v1alpha1.ReadyCondition) }, "10s").Should(Equal("False/SourceDegraded"))
			Expect(storeUsers(ns)).To(Equal([]string{"u1", "u2"}))
		})
	})
})

// metricValue is the value of the first series of a metric with the namespace
// and object name (datasource, persona or playbook label), from the registry
// the manager serves; empty when there is no such series.
func metricValue(name, namespace, object string) string {
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] != namespace || (labels["datasource"] != object && labels["persona"] != object && labels["playbook"] != object) {
				continue
			}
			switch {
			case m.GetGauge() != nil:
				return strconv.FormatFloat(m.GetGauge().GetValue(), 'f', -1, 64)
			case m.GetCounter() != nil:
				return strconv.FormatFloat(m.GetCounter().GetValue(), 'f', -1, 64)
			case m.GetHistogram() != nil:
				return fmt.Sprint(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return ""
}
