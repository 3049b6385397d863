package leaderpod

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Against a real kube-apiserver (envtest): the elected replica labels its own
// pod, unlabels a former leader's pod in its namespace, and leaves another
// shard's leader and other namespaces alone.
func TestLabelerMovesTheLabel(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set (make test sets it)")
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ns := range []string{"operator", "elsewhere"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		// No controller-manager makes it: ServiceAccount admission needs it for pods.
		if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(ns, name, leader string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "manager"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "manager"}}}}
		if leader != "" {
			p.Labels[Label] = leader
		}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const id = "persona-operator.usersuccess.io"
	pod("operator", "old-leader", id)
	pod("operator", "new-leader", "")
	pod("operator", "other-shard", "shard-b.usersuccess.io") // another --leader-election-id
	pod("elsewhere", "other-operator", id)

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	l := &Labeler{Client: c, Namespace: "operator", Name: "new-leader", Value: id}
	if !l.NeedLeaderElection() {
		t.Error("the labeler must run on the elected replica only")
	}
	go func() { done <- l.Start(runCtx) }()

	want := map[string]string{"operator/old-leader": "", "operator/new-leader": id,
		"operator/other-shard": "shard-b.usersuccess.io", "elsewhere/other-operator": id}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string]string{}
		for key := range want {
			var p corev1.Pod
			ns, name, _ := strings.Cut(key, "/")
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
				t.Fatal(err)
			}
			got[key] = p.Labels[Label]
			if p.Labels["app"] != "manager" {
				t.Errorf("%s lost its other labels: %v", key, p.Labels)
			}
		}
		if equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("labels %v, want %v", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Start returned %v after its context ended", err)
	}
}

func TestLabelerNeedsItsPodAndAValue(t *testing.T) {
	for _, l := range []*Labeler{{Value: "x"}, {Namespace: "ns", Name: "pod"}, {Namespace: "ns", Name: "pod", Value: "not a label value"}} {
		if err := l.Start(context.Background()); err == nil {
			t.Errorf("%+v started", l)
		}
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
