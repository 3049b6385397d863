package acceptance

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
)

// These specs run the kubectl built beside the control plane against it, as a user
// would: explain, categories, short names and printer columns come from the CRDs.
var _ = Describe("kubectl", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	kubectl := func(args ...string) string {
		GinkgoHelper()
		out, errOut, err := testEnv.Kubectl(args...)
		Expect(err).NotTo(HaveOccurred(), "kubectl %v: %s", args, errOut)
		return out
	}

	applySamples := func() {
		GinkgoHelper()
		files, err := cluster.SampleFiles()
		Expect(err).NotTo(HaveOccurred())
		for _, f := range files {
			if filepath.Base(filepath.Dir(f)) != "samples" {
				continue // connector references need Secrets; admission specs cover them
			}
			data, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			objs, err := cluster.DecodeYAML(data)
			Expect(err).NotTo(HaveOccurred())
			for _, obj := range objs {
				obj.SetNamespace(ns)
				Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			}
		}
	}

	// The API server publishes a new CRD's OpenAPI asynchronously.
	explain := func(what string) string {
		GinkgoHelper()
		var out string
		Eventually(func() error {
			var err error
			out, _, err = testEnv.Kubectl("explain", what)
			return err
		}).Should(Succeed())
		return out
	}

	It("explains persona.spec with useful descriptions", func() {
		out := explain("persona.spec")
		Expect(out).To(ContainSubstring("rule\t<string> -required-"))
		Expect(out).To(ContainSubstring("CEL expression over `user`, `account` and `now`"))
		Expect(out).To(ContainSubstring("insights\t<[]Object>"))
		Expect(out).To(ContainSubstring("onboarding"), "the stage enum is listed")
	})

	It("explains datasource.spec.postgres and playbook.spec.steps", func() {
		Expect(explain("datasource.spec.postgres")).To(ContainSubstring("dsnSecretRef"))
		Expect(explain("playbook.spec.steps")).To(ContainSubstring("dueAfter"))
	})

	It("lists all three kinds under the usersuccess category", func() {
		applySamples()
		out := kubectl("get", "usersuccess", "-n", ns, "-o", "name")
		Expect(out).To(ContainSubstring("datasource.personas.usersuccess.io/crm-accounts"))
		Expect(out).To(ContainSubstring("persona.personas.usersuccess.io/at-risk-enterprise-decision-makers"))
		Expect(out).To(ContainSubstring("playbook.personas.usersuccess.io/stalled-onboarding-outreach"))
	})

	It("prints the documented columns and answers to short names", func() {
		applySamples()
		Expect(kubectl("get", "psn", "-n", ns)).To(MatchRegexp(`NAME\s+MEMBERS\s+ENTERED\s+EXITED\s+READY\s+AGE`))
		Expect(kubectl("get", "dsrc", "-n", ns)).To(MatchRegexp(`NAME\s+TYPE\s+RECORDS\s+REJECTED\s+LAST SYNC\s+READY\s+AGE`))
		Expect(kubectl("get", "pb", "-n", ns)).To(MatchRegexp(`NAME\s+PERSONA\s+RUNNING\s+SUCCEEDED\s+FAILED\s+READY\s+AGE`))
		Expect(kubectl("get", "pb", "-n", ns)).To(ContainSubstring("stalled-onboarding-outreach   stalled-onboarding"))
	})
})
