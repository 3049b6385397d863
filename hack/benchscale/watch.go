package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/playbook"
)

// watchLoop lists, hands every object to onList, then watches from the list's
// resourceVersion and hands every event to onEvent; when the watch ends (the
// API server closes watches after a while) it lists again. It returns when ctx
// is done.
func watchLoop(ctx context.Context, c client.WithWatch, list client.ObjectList, opts []client.ListOption,
	onList func(client.ObjectList), onEvent func(watch.Event)) {
	for ctx.Err() == nil {
		if err := c.List(ctx, list, opts...); err != nil {
			if ctx.Err() == nil {
				fmt.Printf("benchscale: list %T: %v (retrying)\n", list, err)
				time.Sleep(time.Second)
			}
			continue
		}
		onList(list)
		from := &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.GetResourceVersion()}}
		w, err := c.Watch(ctx, list, append([]client.ListOption{from}, opts...)...)
		if err != nil {
			if ctx.Err() == nil && !apierrors.IsGone(err) {
				fmt.Printf("benchscale: watch %T: %v (retrying)\n", list, err)
				time.Sleep(time.Second)
			}
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				break
			}
			onEvent(ev)
		}
		w.Stop()
	}
}

// memberships mirrors the namespace's PersonaMembership slices: persona ->
// slice name -> user ids. changed is signalled (without blocking) on every
// update, and onMember sees every member of every added or modified slice.
type memberships struct {
	mu       sync.Mutex
	slices   map[string]map[string][]string
	changed  chan struct{}
	onMember func(persona, userID string, at time.Time)
}

func newMemberships() *memberships {
	return &memberships{slices: map[string]map[string][]string{}, changed: make(chan struct{}, 1)}
}

func (m *memberships) set(pm *v1alpha1.PersonaMembership, at time.Time) {
	ids := make([]string, len(pm.Members))
	for i, e := range pm.Members {
		ids[i] = e.UserID
	}
	if m.slices[pm.Persona] == nil {
		m.slices[pm.Persona] = map[string][]string{}
	}
	m.slices[pm.Persona][pm.Name] = ids
	if m.onMember != nil {
		for _, id := range ids {
			m.onMember(pm.Persona, id, at)
		}
	}
}

func (m *memberships) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

func (m *memberships) run(ctx context.Context, c client.WithWatch, ns string) {
	watchLoop(ctx, c, &v1alpha1.PersonaMembershipList{}, []client.ListOption{client.InNamespace(ns)},
		func(l client.ObjectList) {
			now := time.Now()
			m.mu.Lock()
			m.slices = map[string]map[string][]string{}
			for i := range l.(*v1alpha1.PersonaMembershipList).Items {
				m.set(&l.(*v1alpha1.PersonaMembershipList).Items[i], now)
			}
			m.mu.Unlock()
			m.notify()
		},
		func(ev watch.Event) {
			pm, ok := ev.Object.(*v1alpha1.PersonaMembership)
			if !ok {
				return
			}
			now := time.Now()
			m.mu.Lock()
			if ev.Type == watch.Deleted {
				delete(m.slices[pm.Persona], pm.Name)
			} else {
				m.set(pm, now)
			}
			m.mu.Unlock()
			m.notify()
		})
}

// members is the set of a persona's members over all its slices.
func (m *memberships) members(persona string) map[string]struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]struct{}{}
	for _, ids := range m.slices[persona] {
		for _, id := range ids {
			out[id] = struct{}{}
		}
	}
	return out
}

func (m *memberships) sliceCount(persona string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.slices[persona])
}

// watchJobs calls onJob with the user of every one-user playbook Job of the
// playbook as it is first seen.
func watchJobs(ctx context.Context, c client.WithWatch, ns, playbookName string, onJob func(userID string, at time.Time)) {
	opts := []client.ListOption{client.InNamespace(ns), client.MatchingLabels{v1alpha1.PlaybookLabel: playbookName}}
	see := func(j *batchv1.Job, at time.Time) {
		if u := j.Annotations[playbook.UserAnnotation]; u != "" {
			onJob(u, at)
		}
	}
	watchLoop(ctx, c, &batchv1.JobList{}, opts,
		func(l client.ObjectList) {
			now := time.Now()
			for i := range l.(*batchv1.JobList).Items {
				see(&l.(*batchv1.JobList).Items[i], now)
			}
		},
		func(ev watch.Event) {
			if j, ok := ev.Object.(*batchv1.Job); ok && ev.Type == watch.Added {
				see(j, time.Now())
			}
		})
}
