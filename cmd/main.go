// Command manager runs the persona-operator controllers.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"os"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	personasv1alpha1 "github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/connector/httpsrc"
	"github.com/usersuccess/persona-operator/internal/controller"
	"github.com/usersuccess/persona-operator/internal/datasource"
	"github.com/usersuccess/persona-operator/internal/identity"
	"github.com/usersuccess/persona-operator/internal/leaderpod"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/query"
	"github.com/usersuccess/persona-operator/internal/syncslots"
	"github.com/usersuccess/persona-operator/internal/webhook"
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(personasv1alpha1.AddToScheme(scheme))
}

func main() {
	var metricsAddr, probeAddr string
	var enableLeaderElection, secureMetrics, enableHTTP2 bool
	var maxConcurrentSyncs, kubeAPIBurst, jobCreateWorkers, personaWorkers int
	var evaluationTimeout time.Duration
	var kubeAPIQPS float64
	var enableWebhooks bool
	var webhookCertPath string
	var queryAddr, queryCertPath, watchNamespaces, leaderElectionID, pprofAddr string
	var labelLeaderPod bool
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	flag.BoolVar(&enableLeaderElection, "leader-elect", false,
		"Enable leader election for the manager, so only one replica reconciles at a time.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS with authentication and authorization (TokenReview and SubjectAccessReview).")
	flag.BoolVar(&enableHTTP2, "enable-http2", false,
		"Enable HTTP/2 for the metrics server (off by default: CVE-2023-44487, CVE-2023-39325).")
	flag.BoolVar(&enableWebhooks, "enable-webhooks", true,
		"Serve the admission webhooks (rule type-checking). Needs a serving certificate in --webhook-cert-path.")
	flag.StringVar(&webhookCertPath, "webhook-cert-path", "",
		"Directory with tls.crt and tls.key for the webhook server (default: controller-runtime's).")
	flag.StringVar(&queryAddr, "query-bind-address", ":8444", "The address the query endpoint (kubectl persona explain and preview) "+
		"binds to, served over HTTPS with TokenReview and SubjectAccessReview; 0 disables it.")
	flag.StringVar(&queryCertPath, "query-cert-path", "",
		"Directory with tls.crt and tls.key for the query endpoint (default: a self-signed certificate made at start).")
	flag.BoolVar(&labelLeaderPod, "label-leader-pod", false,
		"Label the elected replica's pod "+leaderpod.Label+"=<leader-election-id> (POD_NAME and POD_NAMESPACE from the downward API), "+
			"so the query Service routes to the leader only: the other replicas have no profiles to answer with.")
	flag.StringVar(&leaderElectionID, "leader-election-id", "persona-operator.usersuccess.io",
		"Name of the leader-election Lease; managers sharded with --namespaces need one each.")
	flag.StringVar(&watchNamespaces, "namespaces", "",
		"Comma-separated namespaces this manager serves (its caches see nothing else); empty: every namespace. "+
			"Run one manager per group of namespaces to shard the profile store.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "The address Go's pprof endpoints (/debug/pprof/) bind to, "+
		"plain HTTP without authentication: use a loopback address (127.0.0.1:6060). Empty (default) disables them.")
	flag.IntVar(&maxConcurrentSyncs, "max-concurrent-syncs", 4, "DataSource syncs run in parallel.")
	flag.IntVar(&personaWorkers, "persona-workers", 0,
		"Personas evaluated in parallel; 0 (default): the number of CPUs.")
	flag.DurationVar(&evaluationTimeout, "max-evaluation-time", controller.DefaultEvaluationTimeout,
		"Longest evaluation of one persona; one that runs longer is stopped and applies nothing (Ready=False, EvaluationTimeout).")
	flag.IntVar(&jobCreateWorkers, "playbook-job-create-workers", controller.DefaultJobCreateWorkers,
		"Playbook Jobs created in parallel within one pass (launch rate is about this many divided by the API server's create latency).")
	flag.Float64Var(&kubeAPIQPS, "kube-api-qps", 100, "Queries per second to the API server (Playbook launches are bounded by it).")
	flag.IntVar(&kubeAPIBurst, "kube-api-burst", 200, "Burst of queries to the API server.")
	// Budgets per tenant (issue 13): cluster-wide caps no spec can exceed.
	maxSyncsPerNamespace := flag.Int("max-concurrent-syncs-per-namespace", syncslots.DefaultPerNamespace,
		"DataSource syncs one namespace runs at once; at most --max-concurrent-syncs minus 1, so one namespace's "+
			"hanging sources never hold every sync worker. A due sync over the cap is retried 5 s later.")
	maxSyncTimeout := flag.Duration("max-sync-timeout", 10*time.Minute,
		"The longest a DataSource sync may run, whatever its spec.timeout asks (0: spec.timeout alone).")
	maxResponseBytes := flag.Int64("max-response-bytes", httpsrc.DefaultMaxResponseBytes,
		"The largest HTTP response body a DataSource may read, whatever its spec.http.maxResponseBytes asks (0: no cap).")
	maxRecordsPerSource := flag.Int64("max-records-per-source", 5_000_000,
		"The most records one DataSource sync may read; one more fails the sync (Stalled, LimitExceeded) "+
			"and keeps the last good data (0: no cap).")
	maxUsersPerNamespace := flag.Int("max-users-per-namespace", 10_000_000,
		"The most users one namespace's profile store may hold; a sync that would add more is not applied "+
			"(Stalled, LimitExceeded) and the last good data is kept (0: no cap).")
	applySourcePolicy := sourcePolicyFlags(flag.CommandLine)
	// Identity per object (docs/security.md): whom the manager acts as to read
	// a DataSource's Secrets and create a Playbook's Jobs.
	var defaultServiceAccount string
	var requireServiceAccount bool
	flag.StringVar(&defaultServiceAccount, "default-service-account", "",
		"ServiceAccount of an object's own namespace the manager impersonates to read a DataSource's Secrets and ConfigMaps "+
			"and create a Playbook's Jobs, when the object's spec.serviceAccountName is empty. Empty: such objects act as the "+
			"manager itself (single-tenant installs and the demo). The manager's ClusterRole must allow impersonating the name.")
	flag.BoolVar(&requireServiceAccount, "require-service-account", false,
		"Never act as the manager itself: a DataSource or Playbook naming no ServiceAccount, with no --default-service-account, "+
			"is Stalled (ServiceAccountRequired).")
	// The Segment-compatible event endpoint (docs/events.md).
	var eventsAddr, eventsDSNFile, eventsCertPath string
	flag.StringVar(&eventsDSNFile, "events-database-dsn-file", "",
		"File holding the PostgreSQL connection string of the event store (mount it from a Secret). Set, the manager serves "+
			"the event endpoint and Events DataSources; empty (default): Events DataSources are Stalled (EventsDisabled).")
	flag.StringVar(&eventsAddr, "events-bind-address", ":8445",
		"The address the event endpoint (Segment HTTP Tracking API: /v1/track, /v1/batch, ...) binds to, on the leader.")
	flag.StringVar(&eventsCertPath, "events-cert-path", "",
		"Directory with tls.crt and tls.key for the event endpoint; empty: plain HTTP, for a TLS-terminating Ingress in front.")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	setMemoryLimit()
	if policy, err := applySourcePolicy(); err != nil {
		setupLog.Error(err, "invalid flag")
		os.Exit(1)
	} else {
		setupLog.Info("DataSource connections denied to", "cidrs", policy.String())
	}

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: tlsOpts}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	cfg := ctrl.GetConfigOrDie()
	cfg.QPS, cfg.Burst = float32(kubeAPIQPS), kubeAPIBurst
	// Only playbook Jobs are cached: a cluster's other Jobs are none of our business.
	playbookJobs, err := labels.Parse(personasv1alpha1.PlaybookUIDLabel)
	if err != nil {
		setupLog.Error(err, "unable to build the Job cache selector")
		os.Exit(1)
	}
	cacheOpts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}:                        {Label: playbookJobs},
			&personasv1alpha1.PersonaMembership{}: {Transform: cacheMembership},
		},
		// No controller reads managedFields: at a million members the cached
		// PersonaMembership slices, Jobs and ledgers would keep them for nothing.
		DefaultTransform: cache.TransformStripManagedFields(),
	}
	if watchNamespaces != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range strings.Split(watchNamespaces, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				cacheOpts.DefaultNamespaces[ns] = cache.Config{}
			}
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Cache:                  cacheOpts,
		Scheme:                 scheme,
		Metrics:                metricsOpts,
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
		LeaderElection:         enableLeaderElection,
		LeaderElectionID:       leaderElectionID,
		WebhookServer:          ctrlwebhook.NewServer(ctrlwebhook.Options{CertDir: webhookCertPath, TLSOpts: tlsOpts}),
	})
	if err != nil {
		setupLog.Error(err, "unable to create manager")
		os.Exit(1)
	}

	// The profile store is shared by the controllers; DataSources rebuild it after
	// every start.
	store := profile.NewStore()
	identities := controller.NewIdentities(mgr, identity.Policy{DefaultServiceAccount: defaultServiceAccount, Require: requireServiceAccount})
	storeEvents := make(chan event.GenericEvent, 1024)
	events, err := setupEvents(mgr, store, storeEvents, eventsDSNFile, eventsAddr, eventsCertPath, tlsOpts)
	if err != nil {
		setupLog.Error(err, "unable to set up the event endpoint")
		os.Exit(1)
	}
	var eventSources controller.EventSources
	if events != nil {
		eventSources = events
	}
	if err := (&controller.DataSourceReconciler{
		Events:               eventSources,
		StoreEvents:          storeEvents,
		Client:               mgr.GetClient(),
		APIReader:            mgr.GetAPIReader(),
		Store:                store,
		Recorder:             mgr.GetEventRecorder("datasource-controller"),
		MaxConcurrentSyncs:   maxConcurrentSyncs,
		Identities:           identities,
		MaxSyncsPerNamespace: *maxSyncsPerNamespace,
		Limits: datasource.Limits{
			MaxResponseBytes: *maxResponseBytes, MaxRecords: *maxRecordsPerSource, MaxSyncTimeout: *maxSyncTimeout,
			MaxUsers: *maxUsersPerNamespace,
		},
	}).SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "unable to create controller", "controller", "DataSource")
		os.Exit(1)
	}

	if err := (&controller.PersonaReconciler{
		APIReader:         mgr.GetAPIReader(),
		StoreEvents:       storeEvents,
		Client:            mgr.GetClient(),
		Store:             store,
		Recorder:          mgr.GetEventRecorder("persona-controller"),
		Workers:           personaWorkers,
		EvaluationTimeout: evaluationTimeout,
		Identities:        identities,
	}).SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "unable to create controller", "controller", "Persona")
		os.Exit(1)
	}

	if err := (&controller.PlaybookReconciler{
		Client:        mgr.GetClient(),
		Store:         store,
		Recorder:      mgr.GetEventRecorder("playbook-controller"),
		CreateWorkers: jobCreateWorkers,
		Identities:    identities,
	}).SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "unable to create controller", "controller", "Playbook")
		os.Exit(1)
	}

	if enableWebhooks {
		if err := webhook.SetupPersonaWebhook(mgr); err != nil {
			setupLog.Error(err, "unable to create webhook", "webhook", "Persona")
			os.Exit(1)
		}
	}

	if queryAddr != "0" {
		opts := query.Options{BindAddress: queryAddr, CertDir: queryCertPath, TLSOpts: tlsOpts}
		if events != nil {
			opts.Eraser = events // erasures of the event store's users
		}
		if _, err := query.Setup(mgr, store, opts); err != nil {
			setupLog.Error(err, "unable to set up the query endpoint")
			os.Exit(1)
		}
	}

	controller.SetupReadinessMetrics(mgr)

	if labelLeaderPod {
		if err := setupLeaderPodLabel(mgr, leaderElectionID); err != nil {
			setupLog.Error(err, "unable to set up the leader pod label")
			os.Exit(1)
		}
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up ready check")
		os.Exit(1)
	}

	setupLog.Info("starting manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "problem running manager")
		os.Exit(1)
	}
}

// setupLeaderPodLabel adds the Runnable that labels the leader's pod, with a
// direct client: caching pods would watch every pod of the namespace.
func setupLeaderPodLabel(mgr ctrl.Manager, id string) error {
	ns, name := os.Getenv("POD_NAMESPACE"), os.Getenv("POD_NAME")
	if ns == "" || name == "" {
		return errors.New("--label-leader-pod needs POD_NAME and POD_NAMESPACE (the downward API's metadata.name and metadata.namespace)")
	}
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(), HTTPClient: mgr.GetHTTPClient()})
	if err != nil {
		return err
	}
	return mgr.Add(&leaderpod.Labeler{Client: c, Namespace: ns, Name: name, Value: id})
}

// cacheMembership is the cache's transform of PersonaMembership slices: no
// managed fields, and one copy of each account id (membership.InternAccounts).
func cacheMembership(obj any) (any, error) {
	obj, err := cache.TransformStripManagedFields()(obj)
	if m, ok := obj.(*personasv1alpha1.PersonaMembership); ok && err == nil {
		membership.InternAccounts(m)
	}
	return obj, err
}
