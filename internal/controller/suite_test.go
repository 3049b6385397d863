package controller

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	personasv1alpha1 "github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/webhook"
)

// The suite starts one real etcd + kube-apiserver (built from sources by
// hack/build-controlplane.sh; `make test` points KUBEBUILDER_ASSETS at them) and
// installs the generated CRDs. Each spec works in a namespace of its own.
var (
	ctx       context.Context
	cancel    context.CancelFunc
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
	// store is the manager's profile store, inspected by the specs.
	store *profile.Store
	// personaClock drives the Persona controller, so specs can move time.
	personaClock = clocktesting.NewFakeClock(time.Now())
	// playbookClock drives the Playbook controller (overdue steps, rate limits).
	playbookClock = clocktesting.NewFakeClock(time.Now())
	// stopManager stops the running manager (restartManager starts a new one).
	stopManager context.CancelFunc
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

	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(personasv1alpha1.AddToScheme(scheme)).To(Succeed())

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join("..", "..", "config", "webhook", "manifests.yaml")}},
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred(), "start the control plane; run `make test`, which builds it into bin/k8s")
	Expect(cfg).NotTo(BeNil())

	k8sClient, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	startManager()
})

// restartManager stops the manager and starts a new one with an empty profile
// store, as a crash and restart of the operator would.
func restartManager() {
	stopManager()
	startManager()
}

// startManager runs the controllers in the background against the test control
// plane, with a fresh profile store.
func startManager() {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// The same controllers are registered again after a restart.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host:    testEnv.WebhookInstallOptions.LocalServingHost,
			Port:    testEnv.WebhookInstallOptions.LocalServingPort,
			CertDir: testEnv.WebhookInstallOptions.LocalServingCertDir,
		}),
	})
	Expect(webhook.SetupPersonaWebhook(mgr)).To(Succeed())
	Expect(err).NotTo(HaveOccurred())
	store = profile.NewStore()
	storeEvents := make(chan event.GenericEvent, 1024)
	Expect((&DataSourceReconciler{
		StoreEvents: storeEvents,
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Store:       store,
		Recorder:    mgr.GetEventRecorder("datasource-controller"),
	}).SetupWithManager(mgr)).To(Succeed())
	Expect((&PersonaReconciler{
		APIReader:   mgr.GetAPIReader(),
		StoreEvents: storeEvents,
		Client:      mgr.GetClient(),
		Store:       store,
		Clock:       personaClock,
		Recorder:    mgr.GetEventRecorder("persona-controller"),
	}).SetupWithManager(mgr)).To(Succeed())
	Expect((&PlaybookReconciler{
		Client:   mgr.GetClient(),
		Store:    store,
		Clock:    playbookClock,
		Recorder: mgr.GetEventRecorder("playbook-controller"),
	}).SetupWithManager(mgr)).To(Succeed())
	mgrCtx, cancelMgr := context.WithCancel(ctx)
	done := make(chan struct{})
	stopManager = func() { cancelMgr(); <-done }
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(mgrCtx)).To(Succeed())
	}()
}

var _ = AfterSuite(func() {
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// newNamespace creates a namespace with a generated name for one spec. envtest has
// no namespace controller, so namespaces are never really removed; fresh names keep
// specs independent.
func newNamespace() string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func readAll(r io.Reader) (string, error) {
	if r == nil {
		return "", nil
	}
	b, err := io.ReadAll(r)
	return string(b), err
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
