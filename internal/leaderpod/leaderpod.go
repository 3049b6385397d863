// Package leaderpod labels the pod of the elected manager, so that a Service
// can route to the leader only.
//
// Why: the query endpoint of kubectl persona explain and preview reads the
// profile store, which only the leader fills (DataSource syncs run under
// leader election). Every replica serves the endpoint, and a standby answers
// 503 "not the leader"; a Service that selected every replica would send
// about half of the requests there (and `kubectl port-forward svc/...` pins
// one pod, maybe the standby, for its whole life). The webhook and metrics
// Services keep selecting every replica: the webhook is stateless.
//
// The leader labels its own pod when elected and takes the label off every
// other pod of its namespace that still carries it with the same value (a
// former leader whose container restarted after losing the lease keeps its
// pod, and the label, until then). A pod that dies takes its label with it.
// The value is the leader-election ID, so managers sharded with --namespaces
// in one namespace (one Lease each) leave each other's labels alone.
package leaderpod

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Label marks the pod of the elected manager; the query Service selects it.
const Label = "personas.usersuccess.io/leader"

// Labeler is a manager Runnable that runs on the elected replica only.
type Labeler struct {
	// Client reads and writes pods: a direct client (client.New), not the
	// manager's cached one, which would start a pod informer.
	Client client.Client
	// Namespace and Name of this replica's pod (the downward API's
	// metadata.namespace and metadata.name).
	Namespace, Name string
	// Value of the label: the leader-election ID (a valid label value).
	Value string
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: Start runs
// once this replica is elected.
func (l *Labeler) NeedLeaderElection() bool { return true }

// Start labels this pod and unlabels the others, retrying until it succeeds
// (the API server may be briefly unreachable at a failover), then waits for
// the context: the label stays while this process leads.
func (l *Labeler) Start(ctx context.Context) error {
	if l.Namespace == "" || l.Name == "" {
		return errors.New("leader pod label: the pod's name and namespace are unknown (set POD_NAME and POD_NAMESPACE from the downward API)")
	}
	if errs := validation.IsValidLabelValue(l.Value); l.Value == "" || len(errs) > 0 {
		return fmt.Errorf("leader pod label: %q is not a label value: %v", l.Value, errs)
	}
	logger := log.FromContext(ctx).WithName("leaderpod")
	err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Steps: 30, Cap: 10 * time.Second},
		func(ctx context.Context) (bool, error) {
			if err := l.Sync(ctx); err != nil {
				logger.Error(err, "labeling the leader's pod; retrying")
				return false, nil
			}
			return true, nil
		})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("leader pod label: %w", err)
	}
	logger.Info("labeled this pod as the leader", "pod", l.Name, "label", Label)
	<-ctx.Done()
	return nil
}

// Sync puts the label on this pod and removes it from the namespace's other
// pods that carry the same value. Both writes are merge patches of one label: they never conflict with
// the kubelet's or a controller's writes to the pod.
func (l *Labeler) Sync(ctx context.Context) error {
	if err := l.patch(ctx, l.Name, l.Value); err != nil {
		return err
	}
	var pods corev1.PodList
	if err := l.Client.List(ctx, &pods, client.InNamespace(l.Namespace), client.MatchingLabels{Label: l.Value}); err != nil {
		return fmt.Errorf("listing labeled pods: %w", err)
	}
	for _, p := range pods.Items {
		if p.Name == l.Name {
			continue
		}
		if err := l.patch(ctx, p.Name, ""); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// patch sets the label to value, or removes it when value is empty.
func (l *Labeler) patch(ctx context.Context, name, value string) error {
	v := "null"
	if value != "" {
		v = fmt.Sprintf("%q", value)
	}
	body := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, Label, v)
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name = l.Namespace, name
	if err := l.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, []byte(body))); err != nil {
		return fmt.Errorf("labeling pod %s/%s: %w", l.Namespace, name, err)
	}
	return nil
}
