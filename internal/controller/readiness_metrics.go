package controller

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// objectReady exports every Persona's, Playbook's and DataSource's Ready
// condition as a series, so an alert can name an object stuck not Ready
// whatever the reason (a rule that does not compile, a source that never
// synced, a playbook whose persona is gone). It is a collector, as
// kube-state-metrics does it, rather than a gauge set by the reconcilers: at
// every scrape it lists the manager's cache, so a deleted object's series
// disappears with it and no reconciler has to remember to set or forget it.
var objectReady = &readinessCollector{desc: prometheus.NewDesc("persona_object_ready",
	"1 when the object's Ready condition is True, else 0 (False, Unknown, or not reconciled yet). Served by the leader only.",
	[]string{"kind", "namespace", "name"}, nil)}

func init() {
	metrics.Registry.MustRegister(objectReady)
}

// SetupReadinessMetrics makes persona_object_ready list the manager's cache
// (which the controllers' watches fill). Only the elected replica reports:
// a standby's series would duplicate the leader's.
func SetupReadinessMetrics(mgr manager.Manager) {
	objectReady.set(mgr.GetCache(), mgr.Elected())
}

type readinessCollector struct {
	desc *prometheus.Desc

	mu      sync.Mutex
	reader  client.Reader
	elected <-chan struct{}
}

func (c *readinessCollector) set(r client.Reader, elected <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reader, c.elected = r, elected
}

// Describe implements prometheus.Collector.
func (c *readinessCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *readinessCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	r, elected := c.reader, c.elected
	c.mu.Unlock()
	if r == nil {
		return
	}
	select {
	case <-elected:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, row := range readinessRows(ctx, r) {
		v := 0.0
		if row.ready {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, row.kind, row.namespace, row.name)
	}
}

type readinessRow struct {
	kind, namespace, name string
	ready                 bool
}

// readinessRows lists the three kinds. A failed list leaves its kind out of
// the scrape (absent series, not zeros that would fire the alert).
func readinessRows(ctx context.Context, r client.Reader) []readinessRow {
	var rows []readinessRow
	add := func(kind string, m metav1.ObjectMeta, conds []metav1.Condition) {
		rows = append(rows, readinessRow{kind: kind, namespace: m.Namespace, name: m.Name,
			ready: meta.IsStatusConditionTrue(conds, v1alpha1.ReadyCondition)})
	}
	var personas v1alpha1.PersonaList
	if r.List(ctx, &personas) == nil {
		for _, o := range personas.Items {
			add("Persona", o.ObjectMeta, o.Status.Conditions)
		}
	}
	var playbooks v1alpha1.PlaybookList
	if r.List(ctx, &playbooks) == nil {
		for _, o := range playbooks.Items {
			add("Playbook", o.ObjectMeta, o.Status.Conditions)
		}
	}
	var sources v1alpha1.DataSourceList
	if r.List(ctx, &sources) == nil {
		for _, o := range sources.Items {
			add("DataSource", o.ObjectMeta, o.Status.Conditions)
		}
	}
	return rows
}
