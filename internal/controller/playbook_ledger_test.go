package controller

import (
	"context"
	"errors"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/playbook"
)

// Issue 13 row 13(a): a ledger Create whose response is lost must not lead
// the retry to record the same runs in a second slice (GenerateName did).
var _ = Describe("Playbook ledger writes", func() {
	It("retries a create whose response was lost without a second slice", func() {
		ns := newNamespace()
		pb := newPlaybook(ns, "nobody", nil)
		lost := true
		wrapped := interceptor.NewClient(k8sClient.(client.WithWatch), interceptor.Funcs{
			Create: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if err := cl.Create(ctx, obj, opts...); err != nil {
					return err
				}
				if _, ok := obj.(*v1alpha1.PlaybookProgress); ok && lost {
					lost = false
					return errors.New("the response was lost: context deadline exceeded")
				}
				return nil
			},
		})
		r := &PlaybookReconciler{Client: wrapped, Recorder: events.NewFakeRecorder(10)}
		run := v1alpha1.PlaybookRun{UserID: "u1", Persona: "p", EnteredAt: metav1.Now(), Step: "welcome",
			Phase: v1alpha1.RunPending, Job: "onboard-x"}
		plan := playbook.Plan{Changed: map[string]v1alpha1.PlaybookRun{"u1": run}}

		Expect(r.writeLedger(ctx, pb, nil, plan, nil)).To(MatchError(ContainSubstring("response was lost")))
		// The retry, before any cache shows the slice: the same name, refused.
		Expect(r.writeLedger(ctx, pb, nil, plan, nil)).To(MatchError(ContainSubstring("exists but is not in the cache yet")))
		var list v1alpha1.PlaybookProgressList
		Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		Expect(list.Items).To(HaveLen(1), "one slice records the run")
		Expect(list.Items[0].Name).To(Equal("onboard-runs-1"))
		Expect(list.Items[0].Runs).To(HaveLen(1))
	})
})
