package acceptance

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
	"github.com/usersuccess/persona-operator/internal/testutil/operatortest"
)

// The suite starts one control plane with the CRDs and the admission webhook
// and runs the whole operator on it, as the docs' reader would have it.
var (
	ctx       context.Context
	cancel    context.CancelFunc
	testEnv   *cluster.Cluster
	k8sClient client.Client
	operator  *operatortest.Operator
)

func TestAcceptance(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(15 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	RunSpecs(t, "Acceptance Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.TODO())
	var err error
	testEnv, err = cluster.Start(cluster.Options{Webhooks: true})
	Expect(err).NotTo(HaveOccurred())
	k8sClient = testEnv.Client
	operator, err = operatortest.Start(ctx, testEnv, operatortest.Options{})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if operator != nil {
		Expect(operator.Stop()).To(Succeed())
	}
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// newNamespace creates a namespace with a generated name for one spec.
func newNamespace() string {
	GinkgoHelper()
	ns, err := testEnv.Namespace(ctx, "test-")
	Expect(err).NotTo(HaveOccurred())
	return ns
}

func fetchPersona(ns, name string) *v1alpha1.Persona {
	GinkgoHelper()
	p := &v1alpha1.Persona{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, p)).To(Succeed())
	return p
}

// personaReady is the persona's Ready condition as "Status/Reason".
func personaReady(ns, name string) string {
	return cluster.Condition(fetchPersona(ns, name).Status.Conditions, v1alpha1.ReadyCondition)
}
