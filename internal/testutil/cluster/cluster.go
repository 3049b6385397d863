// Package cluster is the envtest harness the suites share: one real control
// plane (etcd and kube-apiserver built from sources into bin/k8s by
// hack/build-controlplane.sh; `make test` points KUBEBUILDER_ASSETS at them)
// with the repository's CRDs and, when asked, its admission webhook
// configuration; the scheme, clients and managers the suites use against it;
// and the repository's manifests (config/samples) as objects.
//
// It does not import the controllers, so the controller package's own suite
// can use it; operatortest runs the whole operator on top of it.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// AssetsEnv names the variable that points at the control plane's binaries.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// Available reports whether a control plane can be started: suites skip
// their envtest specs without one (`go test` outside `make test`).
func Available() bool { return os.Getenv(AssetsEnv) != "" }

// RepoPath returns a path inside the repository, whichever package's test
// asks (suites live at different depths), relative to the working directory
// (a test's is its package directory), so messages name short paths.
func RepoPath(elem ...string) string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, root); err == nil {
			root = rel
		}
	}
	return filepath.Join(append([]string{root}, elem...)...)
}

// Options choose what the control plane has besides the CRDs.
type Options struct {
	// Webhooks installs config/webhook/manifests.yaml: the API server calls
	// the webhook server of the managers NewManager makes.
	Webhooks bool
}

// Cluster is a running control plane and the clients of its admin.
type Cluster struct {
	Env    *envtest.Environment
	Config *rest.Config
	Scheme *k8sruntime.Scheme
	// Client reads straight from the API server (no cache), and watches.
	Client    client.WithWatch
	Clientset *kubernetes.Clientset
	webhooks  bool
	// kubectl is the control plane's kubectl and the flags that point it at
	// the API server as an admin.
	kubectl []string
}

// NewScheme holds the built-in kinds and the project's API.
func NewScheme() (*k8sruntime.Scheme, error) {
	s := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Start starts the control plane and installs the generated CRDs.
func Start(opts Options) (*Cluster, error) {
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{RepoPath("config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	if opts.Webhooks {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: []string{RepoPath("config", "webhook", "manifests.yaml")}}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane (%s=%q; `make test` builds it into bin/k8s): %w",
			AssetsEnv, os.Getenv(AssetsEnv), err)
	}
	c := &Cluster{Env: env, Config: cfg, Scheme: scheme, webhooks: opts.Webhooks}
	if c.Client, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, errors.Join(err, env.Stop())
	}
	if c.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, errors.Join(err, env.Stop())
	}
	// kubectl runs as an admin of its own (a client certificate in system:masters).
	admin, err := env.ControlPlane.AddUser(envtest.User{Name: "kubectl-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, errors.Join(err, env.Stop())
	}
	k, err := admin.Kubectl()
	if err != nil {
		return nil, errors.Join(err, env.Stop())
	}
	c.kubectl = append([]string{k.Path}, k.Opts...)
	return c, nil
}

// Webhooks reports whether the API server calls the managers' webhooks.
func (c *Cluster) Webhooks() bool { return c.webhooks }

// Stop stops the control plane.
func (c *Cluster) Stop() error { return c.Env.Stop() }

// NewManager makes a manager for the control plane: no metrics or probe
// listeners (suites run in parallel), controller names reusable (suites
// restart managers), and, when the cluster has webhooks, the webhook server
// the API server was told to call.
func (c *Cluster) NewManager() (manager.Manager, error) {
	opts := ctrl.Options{
		Scheme:                 c.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if c.webhooks {
		w := c.Env.WebhookInstallOptions
		opts.WebhookServer = ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir,
		})
	}
	return ctrl.NewManager(c.Config, opts)
}

// Run starts the manager in the background; stop cancels it, waits until it
// has stopped, and returns what Start returned.
func Run(ctx context.Context, mgr manager.Manager) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// Namespace creates a namespace with a generated name. envtest has no
// namespace controller, so namespaces are never really removed; fresh names
// keep specs independent.
func (c *Cluster) Namespace(ctx context.Context, prefix string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := c.Client.Create(ctx, ns); err != nil {
		return "", err
	}
	return ns.Name, nil
}

// Kubectl runs the kubectl built beside the control plane, as its admin,
// from the repository root (so repository paths resolve).
func (c *Cluster) Kubectl(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(c.kubectl[0], append(append([]string(nil), c.kubectl[1:]...), args...)...)
	cmd.Dir = RepoPath()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// Condition returns the condition of type typ as "Status/Reason", or ""
// while it is absent: the form specs compare and print.
func Condition(conds []metav1.Condition, typ string) string {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return ""
	}
	return string(c.Status) + "/" + c.Reason
}

// DecodeYAML returns every object of a (multi-document) YAML stream.
func DecodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// SampleFiles lists every object manifest under config/samples
// (kustomization files excluded).
func SampleFiles() ([]string, error) {
	var files []string
	err := filepath.WalkDir(RepoPath("config", "samples"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".yaml") && filepath.Base(path) != "kustomization.yaml" {
			files = append(files, path)
		}
		return nil
	})
	return files, err
}
