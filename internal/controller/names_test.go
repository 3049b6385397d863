package controller

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
)

// Persona and Playbook names are label values on the objects the operator
// writes for them (slices, ledger, Jobs): a name a label cannot hold would
// make every one of those writes fail, so the API server refuses it first.
var _ = Describe("Name length", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	create := func(manifest, name string) error {
		objs, err := cluster.DecodeYAML([]byte(manifest))
		Expect(err).NotTo(HaveOccurred())
		obj := objs[0]
		obj.SetNamespace(ns)
		if name != "" {
			obj.SetName(name)
		}
		return k8sClient.Create(ctx, obj)
	}

	DescribeTable("a 64-character name is rejected, a 63-character one accepted",
		func(manifest, label string) {
			Expect(create(validDataSource, "")).To(Succeed()) // the persona's rule reads user.nps
			err := create(manifest, strings.Repeat("a", 64))
			Expect(err).To(HaveOccurred(), "the API server accepted a 64-character name")
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			Expect(err.Error()).To(ContainSubstring("metadata.name must be at most 63 characters"))
			Expect(err.Error()).To(ContainSubstring(label))
			Expect(create(manifest, strings.Repeat("a", 63))).To(Succeed())
		},
		Entry("Persona", validPersona, "personas.usersuccess.io/persona"),
		Entry("Playbook", validPlaybook, "personas.usersuccess.io/playbook"),
	)
})
