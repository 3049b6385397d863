package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/datasource"
	"github.com/usersuccess/persona-operator/internal/membership"
	"github.com/usersuccess/persona-operator/internal/persona"
	"github.com/usersuccess/persona-operator/internal/playbook"
)

// DataSource metrics, on controller-runtime's registry (served at /metrics).
var (
	syncResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "persona_datasource_syncs_total",
		Help: "DataSource syncs by result: applied, unchanged, held_back, failed, config_error.",
	}, []string{"namespace", "datasource", "result"})
	syncDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "persona_datasource_sync_duration_seconds",
		Help:    "Duration of DataSource syncs, fetch and mapping included.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	}, []string{"namespace", "datasource"})
	syncRecords = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "persona_datasource_records",
		Help: "Records of the last sync, by state: accepted (applied), rejected.",
	}, []string{"namespace", "datasource", "state"})
	// Staleness is a condition on the object; alerts need it as a series, and
	// a failing sync counter alone does not say the data is past maxStaleness.
	dataStale = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "persona_datasource_stale",
		Help: "1 while the DataSource's last good data is older than its maxStaleness (the Stale condition), else 0.",
	}, []string{"namespace", "datasource"})
	lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "persona_datasource_last_success_timestamp_seconds",
		Help: "Unix time of the DataSource's last successful sync (status.lastSuccessfulSyncTime).",
	}, []string{"namespace", "datasource"})
	// A namespace that keeps its syncs waiting holds its cap of workers
	// (hanging or slow sources): the series says whose.
	syncsWaiting = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "persona_datasource_sync_waits_total",
		Help: "Due syncs put off because their namespace already ran its cap of syncs (--max-concurrent-syncs-per-namespace).",
	}, []string{"namespace"})
	// What an HTTP source met on its way through a listing: limits it waited
	// out, pages it resumed at instead of restarting, tokens fetched.
	httpEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "persona_datasource_http_events_total",
		Help: "HTTP source events: throttled (a 429 or 503), resumed (a listing went on from the page that failed, after a wait), " +
			"token_fetched (a new OAuth2 access token), token_rejected (the API refused an access token; a new one was fetched once).",
	}, []string{"namespace", "datasource", "event"})
)

func init() {
	metrics.Registry.MustRegister(syncResults, syncDuration, syncRecords, dataStale, lastSuccess, syncsWaiting, httpEvents)
}

// observeFreshness exports the DataSource's staleness, on every reconcile:
// staleness changes with time alone, between syncs.
func observeFreshness(ds *v1alpha1.DataSource) {
	stale := 0.0
	if meta.IsStatusConditionTrue(ds.Status.Conditions, v1alpha1.StaleCondition) {
		stale = 1
	}
	dataStale.WithLabelValues(ds.Namespace, ds.Name).Set(stale)
	if t := ds.Status.LastSuccessfulSyncTime; t != nil {
		lastSuccess.WithLabelValues(ds.Namespace, ds.Name).Set(float64(t.Unix()))
	}
}

// forgetDataSource drops a deleted DataSource's series.
func forgetDataSource(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "datasource": name}
	for _, v := range []*prometheus.MetricVec{syncResults.MetricVec, syncDuration.MetricVec, syncRecords.MetricVec,
		dataStale.MetricVec, lastSuccess.MetricVec, httpEvents.MetricVec} {
		v.DeletePartialMatch(l)
	}
}

func observeSync(ds *v1alpha1.DataSource, out datasource.Outcome, applied, unchanged bool) {
	result := "applied"
	switch {
	case applied && unchanged:
		result = "unchanged"
	case out.FetchErr != nil && conditions.IsStalled(out.FetchErr):
		result = "config_error"
	case out.FetchErr != nil:
		result = "failed"
	case !applied:
		result = "held_back"
	}
	syncResults.WithLabelValues(ds.Namespace, ds.Name, result).Inc()
	syncDuration.WithLabelValues(ds.Namespace, ds.Name).Observe(out.Duration.Seconds())
	if out.FetchErr == nil {
		syncRecords.WithLabelValues(ds.Namespace, ds.Name, "accepted").Set(float64(ds.Status.RecordsAccepted))
		syncRecords.WithLabelValues(ds.Namespace, ds.Name, "rejected").Set(float64(out.Rejected))
	}
}

// Persona metrics.
var (
	personaMembers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "persona_members", Help: "Current members of a persona.",
	}, []string{"namespace", "persona"})
	personaEntered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "persona_entered_total", Help: "Users who entered a persona.",
	}, []string{"namespace", "persona"})
	personaExited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "persona_exited_total", Help: "Users who exited a persona.",
	}, []string{"namespace", "persona"})
	personaEvalDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "persona_evaluation_duration_seconds", Help: "Duration of a persona's rule and insight evaluation.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"namespace", "persona"})
	personaEvalErrors = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "persona_evaluation_errors", Help: "Profiles whose rule evaluation failed in the last full evaluation.",
	}, []string{"namespace", "persona"})
	personaEvaluations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "persona_evaluations_total",
		Help: "Evaluations of a persona by mode: full (every profile), changed (only the profiles changed since the last one) or database (in its database).",
	}, []string{"namespace", "persona", "mode"})
)

func init() {
	metrics.Registry.MustRegister(personaMembers, personaEntered, personaExited, personaEvalDuration, personaEvalErrors,
		personaEvaluations)
}

func observeEvaluation(p *v1alpha1.Persona, ch membership.Counts, ev persona.Evaluation, mode string) {
	personaEvaluations.WithLabelValues(p.Namespace, p.Name, mode).Inc()
	personaMembers.WithLabelValues(p.Namespace, p.Name).Set(float64(p.Status.Members))
	personaEntered.WithLabelValues(p.Namespace, p.Name).Add(float64(ch.Entered))
	personaExited.WithLabelValues(p.Namespace, p.Name).Add(float64(ch.Exited))
	personaEvalDuration.WithLabelValues(p.Namespace, p.Name).Observe(ev.Duration.Seconds())
	personaEvalErrors.WithLabelValues(p.Namespace, p.Name).Set(float64(ev.Errors))
}

// forgetPersona drops a deleted persona's series.
func forgetPersona(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "persona": name}
	for _, v := range []*prometheus.MetricVec{personaMembers.MetricVec, personaEntered.MetricVec, personaExited.MetricVec,
		personaEvalDuration.MetricVec, personaEvalErrors.MetricVec, personaEvaluations.MetricVec} {
		v.DeletePartialMatch(l)
	}
}

// Playbook metrics. persona_playbook_runs{state="overdue"} is the gauge to
// page on: steps past their dueAfter that have not succeeded.
var (
	playbookRuns = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "persona_playbook_runs", Help: "Runs of a playbook by state: pending, running, succeeded, failed, overdue.",
	}, []string{"namespace", "playbook", "state"})
	playbookLaunches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "persona_playbook_jobs_launched_total", Help: "Jobs created by a playbook.",
	}, []string{"namespace", "playbook"})
	// A pass is full when it read every member and run (a start, a spec or
	// trigger change, many changes at once, or the periodic check), and
	// incremental when it read only what changed.
	playbookPasses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "persona_playbook_passes_total", Help: "Planning passes of a playbook, full or incremental.",
	}, []string{"namespace", "playbook", "pass"})
)

func init() {
	metrics.Registry.MustRegister(playbookRuns, playbookLaunches, playbookPasses)
}

func observePlaybook(pb *v1alpha1.Playbook, c playbook.Counts, launched int) {
	for state, n := range map[string]int64{
		"pending": c.Pending, "running": c.Running, "succeeded": c.Succeeded, "failed": c.Failed, "overdue": c.Overdue,
	} {
		playbookRuns.WithLabelValues(pb.Namespace, pb.Name, state).Set(float64(n))
	}
	playbookLaunches.WithLabelValues(pb.Namespace, pb.Name).Add(float64(launched))
}

// forgetPlaybook drops a deleted playbook's series, so dashboards don't show
// ghosts and the registry doesn't grow with churn.
func forgetPlaybook(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "playbook": name}
	playbookRuns.DeletePartialMatch(l)
	playbookLaunches.DeletePartialMatch(l)
	playbookPasses.DeletePartialMatch(l)
}
