package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/query"
	"github.com/usersuccess/persona-operator/internal/queryapi"
)

// stalledUsers is a User DataSource whose ConfigMap does not exist: it never
// loads (Stalled, ConfigMapNotFound). It declares segment.
func stalledUsers(ns string) *v1alpha1.DataSource {
	return &v1alpha1.DataSource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "crm-users"},
		Spec: v1alpha1.DataSourceSpec{
			Type: v1alpha1.DataSourceInline,
			Inline: &v1alpha1.InlineSource{Format: v1alpha1.FormatCSV,
				ConfigMapRef: &v1alpha1.ConfigMapKeySelector{Name: "crm-users", Key: "users.csv"}},
			Attributes: []v1alpha1.AttributeMapping{{Name: "segment", Type: v1alpha1.TypeString}},
		},
	}
}

func readyMessage(ns, name string) string {
	c := meta.FindStatusCondition(fetchPersona(ns, name).Status.Conditions, v1alpha1.ReadyCondition)
	if c == nil {
		return ""
	}
	return c.Message
}

// allowAll lets every token in, for calling the query endpoint's handler.
type allowAll struct{}

func (allowAll) Authenticate(context.Context, string) (query.Identity, bool, error) {
	return query.Identity{Name: "test"}, true, nil
}
func (allowAll) Authorize(context.Context, query.Identity, query.Access) (bool, error) {
	return true, nil
}

// previewLive asks the query endpoint (over the manager's store, reading
// objects from the API server) to preview the live persona unchanged: what it
// finds entering or exiting is what it takes for the recorded membership.
func previewLive(ns, persona string) queryapi.Preview {
	GinkgoHelper()
	h := query.NewHandler(query.Handler{Reviewer: allowAll{}, Store: store, Reader: k8sClient, Log: logr.Discard()}, 1)
	body, err := json.Marshal(fetchPersona(ns, persona))
	Expect(err).NotTo(HaveOccurred())
	r := httptest.NewRequest(http.MethodPost, "/v1/namespaces/"+ns+"/personas/"+persona+"/preview", bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer x")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	var pv queryapi.Preview
	Expect(json.Unmarshal(w.Body.Bytes(), &pv)).To(Succeed())
	return pv
}

var _ = Describe("Persona sources and slice ownership", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		Expect(k8sClient.Create(ctx, personaUsers(ns, personaCSV))).To(Succeed())
		Expect(k8sClient.Create(ctx, personaAccounts(ns))).To(Succeed())
		Expect(k8sClient.Create(ctx, stalledUsers(ns))).To(Succeed())
		Eventually(func() string { return condition(ns, "crm-users", v1alpha1.StalledCondition) }).Should(Equal("True/ConfigMapNotFound"))
	})

	It("evaluates a persona that reads only other sources' attributes while one source is stalled", func() {
		Expect(k8sClient.Create(ctx, newPersona(ns, "by-nps", "has(user.nps) && user.nps <= 6"))).To(Succeed())
		Eventually(func() string { return personaReady(ns, "by-nps") }).Should(Equal("True/Succeeded"))
		Expect(storedMembers(ns, "by-nps")).To(Equal([]string{"u1", "u3", "u5"}))
		var names []string
		for _, s := range fetchPersona(ns, "by-nps").Status.Sources {
			names = append(names, s.Name)
		}
		Expect(names).To(Equal([]string{"accounts", "users"}), "status lists the sources evaluated")
	})

	It("holds a persona that reads the stalled source, naming its stall reason", func() {
		Expect(k8sClient.Create(ctx, newPersona(ns, "smb", `has(user.segment) && user.segment == "smb"`))).To(Succeed())
		Eventually(func() string { return personaReady(ns, "smb") }).Should(Equal("False/WaitingForSources"))
		Expect(readyMessage(ns, "smb")).To(ContainSubstring("waiting for DataSources to load: crm-users (ConfigMapNotFound: "))
		Expect(readyMessage(ns, "smb")).NotTo(ContainSubstring("users,"), "only the stalled source is named")
		Expect(storedMembers(ns, "smb")).To(BeEmpty())
	})

	It("reports InvalidRule despite the stalled source", func() {
		Expect(k8sClient.Create(ctx, newPersona(ns, "by-nps", "has(user.nps) && user.nps <= 6"))).To(Succeed())
		Eventually(func() []string { return storedMembers(ns, "by-nps") }).Should(Equal([]string{"u1", "u3", "u5"}))
		updateSpec(ns, "users", func(ds *v1alpha1.DataSource) {
			ds.Spec.Attributes = ds.Spec.Attributes[:1] // nps is no longer declared
		})
		Eventually(func() string { return personaReady(ns, "by-nps") }).Should(Equal("False/InvalidRule"))
		Expect(readyMessage(ns, "by-nps")).To(ContainSubstring("undefined field 'nps'"))
		Expect(storedMembers(ns, "by-nps")).To(Equal([]string{"u1", "u3", "u5"}), "membership is unchanged")
	})

	It("ignores a labelled slice it does not control, as the query endpoint does", func() {
		// A slice labelled for the persona but controlled by nobody (a deleted
		// persona of the same name left it, or someone wrote it by hand).
		foreign := &v1alpha1.PersonaMembership{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "everyone-old",
			Labels: map[string]string{v1alpha1.PersonaLabel: "everyone"}}, Persona: "everyone", MemberCount: 1,
			Members: []v1alpha1.MembershipEntry{{UserID: "u9", EnteredAt: metav1.NewTime(time.Now().Add(-time.Hour))}}}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		Expect(k8sClient.Create(ctx, newPersona(ns, "everyone", "true"))).To(Succeed())
		Eventually(func() string { return personaReady(ns, "everyone") }).Should(Equal("True/Succeeded"))

		st := fetchPersona(ns, "everyone").Status
		Expect(st.Members).To(BeEquivalentTo(5), "u9 of the foreign slice is not a member")
		Expect(st.TotalExited).To(BeZero(), "nor did it exit")
		Consistently(func() []v1alpha1.MembershipEntry {
			var s v1alpha1.PersonaMembership
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "everyone-old"}, &s)).To(Succeed())
			return s.Members
		}, "1s").Should(HaveLen(1), "the foreign slice is neither written nor deleted")
		pv := previewLive(ns, "everyone")
		Expect([]int{pv.Members, pv.Entered.Count, pv.Exited.Count}).To(Equal([]int{5, 0, 0}),
			"the query endpoint takes the same slices for the membership: u9 neither recorded nor kept")
	})
})
