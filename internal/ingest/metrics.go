package ingest

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Event endpoint metrics, on controller-runtime's registry (served at /metrics).
var (
	requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "persona_events_requests_total",
		Help: "Requests to the event endpoint by HTTP status and reason (empty for 200).",
	}, []string{"code", "reason"})
	calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "persona_events_calls_total",
		Help: "Calls of accepted requests by namespace and result: stored, duplicate (a retried messageId).",
	}, []string{"namespace", "result"})
	commitDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "persona_events_commit_duration_seconds",
		Help:    "Time to commit one request's calls to the event store (the 200 waits for it).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	applyLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "persona_events_apply_lag_seconds",
		Help:    "From a commit (or a window edge) to its users' profiles applied in the store.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
)

func init() {
	metrics.Registry.MustRegister(requests, calls, commitDuration, applyLag)
}

func observeRequest(status int, reason string) {
	requests.WithLabelValues(strconv.Itoa(status), reason).Inc()
}

func observeCalls(namespace string, stored, total int) {
	calls.WithLabelValues(namespace, "stored").Add(float64(stored))
	if total > stored {
		calls.WithLabelValues(namespace, "duplicate").Add(float64(total - stored))
	}
}

func observeCommit(d time.Duration) { commitDuration.Observe(d.Seconds()) }
