package acceptance

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
)

// The samples are the product's first impression: every persona in them must
// compile against the sample DataSources and evaluate.
var _ = Describe("config/samples", func() {
	It("evaluates every sample persona, and answers the headline question", func() {
		ns := newNamespace()
		root := cluster.RepoPath("config", "samples")
		data, err := os.ReadFile(filepath.Join(root, "kustomization.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var k struct{ Resources []string }
		Expect(yaml.Unmarshal(data, &k)).To(Succeed())
		for _, f := range k.Resources {
			data, err := os.ReadFile(filepath.Join(root, f))
			Expect(err).NotTo(HaveOccurred())
			objs, err := cluster.DecodeYAML(data)
			Expect(err).NotTo(HaveOccurred())
			for _, o := range objs {
				o.SetNamespace(ns)
				Expect(k8sClient.Create(ctx, o)).To(Succeed(), f)
			}
		}

		var personas v1alpha1.PersonaList
		Expect(k8sClient.List(ctx, &personas, client.InNamespace(ns))).To(Succeed())
		Expect(len(personas.Items)).To(BeNumerically(">=", 12))
		for _, p := range personas.Items {
			Eventually(func() string { return personaReady(ns, p.Name) }).Should(Equal("True/Succeeded"), p.Name)
		}

		st := fetchPersona(ns, "at-risk-enterprise-decision-makers").Status
		Expect(st.SampleMembers).To(Equal([]string{"u-1"}))
		Expect(st.Insights[0].Name).To(Equal("top-feature-requests"))
		Expect(st.Insights[0].Values).To(ContainElement(v1alpha1.InsightValue{Value: "audit_log", Count: 1}))
		Expect(fetchPersona(ns, "stalled-onboarding").Status.SampleMembers).To(Equal([]string{"u-3"}))
		Expect(fetchPersona(ns, "beta-testers").Status.SampleMembers).To(Equal([]string{"u-2"}))
	})
})
