package controller

import (
	"bytes"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/usersuccess/persona-operator/internal/connector/netguard"
	"github.com/usersuccess/persona-operator/internal/datasource"
	"github.com/usersuccess/persona-operator/internal/identity"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
	"github.com/usersuccess/persona-operator/internal/webhook"
)

// The suite starts one real etcd + kube-apiserver with the generated CRDs and
// the admission webhook (internal/testutil/cluster) and runs this package's
// reconcilers in a manager. Each spec works in a namespace of its own.
var (
	ctx       context.Context
	cancel    context.CancelFunc
	testEnv   *cluster.Cluster
	k8sClient client.Client
	scheme    *runtime.Scheme
	// store is the manager's profile store, inspected by the specs.
	store *profile.Store
	// personaClock drives the Persona controller, so specs can move time.
	personaClock = clocktesting.NewFakeClock(time.Now())
	// playbookClock drives the Playbook controller (overdue steps, rate limits).
	playbookClock = clocktesting.NewFakeClock(time.Now())
	// suiteLimits are the manager's cluster-wide caps (--max-records-per-source,
	// --max-response-bytes), small enough for specs to exceed.
	suiteLimits = datasource.Limits{MaxRecords: 1000, MaxResponseBytes: 1 << 20, MaxUsers: 1500}
	// stopManager stops the running manager (restartManager starts a new one).
	stopManager func()
	// managerLogs holds everything the manager logged, so specs can check that no
	// secret ever reaches a log line.
	managerLogs = &syncBuffer{}
)

// syncBuffer is a bytes.Buffer safe for the manager's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	// Generous on a loaded 2-core CI machine; specs still pass in ~100 ms typically.
	SetDefaultEventuallyTimeout(15 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	// Verbose logs, so the secret-leak checks see everything the manager can say.
	logf.SetLogger(zap.New(zap.WriteTo(io.MultiWriter(GinkgoWriter, managerLogs)), zap.UseDevMode(true), zap.Level(zapcore.Level(-5))))
	ctx, cancel = context.WithCancel(context.TODO())
	// The specs' HTTP and PostgreSQL servers listen on loopback, which the
	// manager's default policy denies; link-local stays denied (see
	// datasource_guard_test.go).
	linkLocal, err := netguard.NewPolicy([]string{"169.254.0.0/16", "fe80::/10"})
	Expect(err).NotTo(HaveOccurred())
	netguard.SetSources(linkLocal)

	testEnv, err = cluster.Start(cluster.Options{Webhooks: true})
	Expect(err).NotTo(HaveOccurred())
	k8sClient, scheme = testEnv.Client, testEnv.Scheme

	startManager()
})

// restartManager stops the manager and starts a new one with an empty profile
// store, as a crash and restart of the operator would.
func restartManager() {
	stopManager()
	startManager()
}

// startManager runs the controllers in the background against the test control
// plane, with a fresh profile store and the default identity policy (the
// manager acts as itself unless an object names a ServiceAccount).
func startManager() { startManagerWith(identity.Policy{}) }

// startManagerWith is startManager with the identity flags set.
func startManagerWith(policy identity.Policy) {
	mgr, err := testEnv.NewManager()
	Expect(err).NotTo(HaveOccurred())
	identities := NewIdentities(mgr, policy)
	Expect(webhook.SetupPersonaWebhook(mgr)).To(Succeed())
	store = profile.NewStore()
	storeEvents := make(chan event.GenericEvent, 1024)
	Expect((&DataSourceReconciler{
		StoreEvents: storeEvents,
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Store:       store,
		Recorder:    mgr.GetEventRecorder("datasource-controller"),
		Limits:      suiteLimits,
		Identities:  identities,
	}).SetupWithManager(mgr)).To(Succeed())
	Expect((&PersonaReconciler{
		APIReader:   mgr.GetAPIReader(),
		StoreEvents: storeEvents,
		Client:      mgr.GetClient(),
		Store:       store,
		Clock:       personaClock,
		Recorder:    mgr.GetEventRecorder("persona-controller"),
		Identities:  identities,
	}).SetupWithManager(mgr)).To(Succeed())
	Expect((&PlaybookReconciler{
		Client:     mgr.GetClient(),
		Store:      store,
		Clock:      playbookClock,
		Recorder:   mgr.GetEventRecorder("playbook-controller"),
		Identities: identities,
	}).SetupWithManager(mgr)).To(Succeed())
	stop := cluster.Run(ctx, mgr)
	stopManager = func() {
		GinkgoHelper()
		Expect(stop()).To(Succeed())
	}
}

var _ = AfterSuite(func() {
	if stopManager != nil {
		stopManager()
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

// countingClient wraps the test client and counts every API write, for the
// specs that assert a reconcile with nothing to do writes nothing.
func countingClient(writes *atomic.Int32) client.Client {
	count := func() { writes.Add(1) }
	return interceptor.NewClient(k8sClient.(client.WithWatch), interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
			count()
			return c.Create(ctx, o, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
			count()
			return c.Update(ctx, o, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.DeleteOption) error {
			count()
			return c.Delete(ctx, o, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
			count()
			return c.Patch(ctx, o, p, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, o client.Object, opts ...client.SubResourceUpdateOption) error {
			count()
			return c.SubResource(sub).Update(ctx, o, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			count()
			return c.SubResource(sub).Patch(ctx, o, p, opts...)
		},
	})
}
