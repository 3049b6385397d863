package ingest_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/ingest"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
	"github.com/usersuccess/persona-operator/internal/testutil/operatortest"
)

// BenchmarkEventsEndToEnd: the whole operator on a real control plane with
// the event store on this machine's PostgreSQL, an Events source with a
// 1-hour windowed count of pings and a persona of the users who pinged.
//
// membership: BENCH_LATENCY_SECONDS (default 10) at 2,000 events/s, each
// event a new user's first ping; from each 200 to the user's entry in the
// PersonaMembership slices (polled every 25 ms).
//
// window-edge: 100 users each ping once with a timestamp that leaves the
// 1-hour window 5 to 15 s later; from that instant to the user's exit from
// the slices (polled every 25 ms), with no other event to wake anything.
//
//	POSTGRES_DURABLE=1 KUBEBUILDER_ASSETS=$PWD/bin/k8s/v1.37.2 go test ./internal/ingest/ -run '^$' -bench EventsEndToEnd -benchtime 1x
func BenchmarkEventsEndToEnd(b *testing.B) {
	if !cluster.Available() {
		b.Skip("no control plane binaries (" + cluster.AssetsEnv + ")")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env, op, ns, _ := eventsOperator(ctx, b, fmt.Sprintf("bench_end_to_end_%d", time.Now().UnixNano()), operatortest.Options{})
	c := env.Client
	const writeKey = "wk-bench"
	must(b, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "segment"},
		StringData: map[string]string{"writeKey": writeKey}}))
	must(b, c.Create(ctx, &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "product"},
		Spec: v1alpha1.DataSourceSpec{Type: v1alpha1.DataSourceEvents, Entity: v1alpha1.EntityUser,
			Attributes: []v1alpha1.AttributeMapping{{Name: "plan", Type: v1alpha1.TypeString}},
			Events: &v1alpha1.EventsSource{
				WriteKeySecretRef: v1alpha1.SecretKeySelector{Name: "segment", Key: "writeKey"},
				Aggregates:        []v1alpha1.EventAggregate{{Name: "pings", Function: v1alpha1.AggregateCount, Event: "ping", Window: "1h"}},
			}}}))
	must(b, c.Create(ctx, &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pingers"},
		Spec: v1alpha1.PersonaSpec{Rule: `has(user.pings) && user.pings >= 1`}}))
	waitFor(b, "the DataSource to be Ready", func() bool {
		var ds v1alpha1.DataSource
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "product"}, &ds) == nil &&
			cluster.Condition(ds.Status.Conditions, v1alpha1.ReadyCondition) == "True/Succeeded"
	})
	endpoint := "http://" + op.Events.Addr()
	seconds := 10
	if v, err := strconv.Atoi(os.Getenv("BENCH_LATENCY_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	load := ingest.LoadAverage()
	b.ResetTimer()
	profiled := watchProfiles(ctx, op.Store, ns, "p", seconds*20*100)
	lat, acked := eventToMembership(b, ctx, c, ns, endpoint, writeKey, "p", seconds*20)
	b.ReportMetric(ms(quantile(lat, 50)), "membership-p50-ms")
	b.ReportMetric(ms(quantile(lat, 99)), "membership-p99-ms")
	b.Logf("event → membership at 2,000 events/s for %d s, %d users: p50 %s, p99 %s, max %s (poll 25 ms); load average %s → %s",
		seconds, len(lat), quantile(lat, 50), quantile(lat, 99), quantile(lat, 100), load, ingest.LoadAverage())
	if in := since(acked, <-profiled); len(in) > 0 {
		b.ReportMetric(ms(quantile(in, 99)), "profile-p99-ms")
		b.Logf("of which event → profile store (the ingest side), %d users: p50 %s, p99 %s, max %s (poll 5 ms)",
			len(in), quantile(in, 50), quantile(in, 99), quantile(in, 100))
	}

	load = ingest.LoadAverage()
	edges := windowEdges(b, ctx, c, ns, endpoint, writeKey)
	b.ReportMetric(ms(quantile(edges, 50)), "edge-p50-ms")
	b.ReportMetric(ms(quantile(edges, 99)), "edge-p99-ms")
	b.Logf("window edge → membership exit, %d users: p50 %s, p99 %s, max %s (poll 25 ms); load average %s → %s",
		len(edges), quantile(edges, 50), quantile(edges, 99), quantile(edges, 100), load, ingest.LoadAverage())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// watchProfiles polls the profile store every 5 ms for the users
// prefix0…prefix(n-1) and sends when each appeared in it.
func watchProfiles(ctx context.Context, store *profile.Store, ns, prefix string, n int) <-chan map[string]time.Time {
	out := make(chan map[string]time.Time, 1)
	go func() {
		seen := make(map[string]time.Time, n)
		deadline := time.Now().Add(2 * time.Minute)
		next := 0 // users appear about in order: look from the first not yet seen
		for len(seen) < n && time.Now().Before(deadline) && ctx.Err() == nil {
			store.Namespace(ns).Read(nil, func(v *profile.View) {
				at := time.Now()
				for i := next; i < n && i < next+2000; i++ {
					u := fmt.Sprint(prefix, i)
					if _, done := seen[u]; !done {
						if _, ok := v.User(u); ok {
							seen[u] = at
						}
					}
				}
				for next < n {
					if _, done := seen[fmt.Sprint(prefix, next)]; !done {
						break
					}
					next++
				}
			})
			time.Sleep(5 * time.Millisecond)
		}
		out <- seen
	}()
	return out
}

// since is, sorted, each user's time from acked to at (0 when earlier:
// the poll saw it before the client read the 200).
func since(acked, at map[string]time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(at))
	for u, t := range at {
		if a, ok := acked[u]; ok {
			out = append(out, max(t.Sub(a), 0))
		}
	}
	slices.Sort(out)
	return out
}

// windowEdges pings once for each of 100 users (e0…e99), timestamped so the
// ping leaves the 1-hour window 5 to 15 s later, waits for them to be
// members, and returns, sorted, the time from each edge to the user's exit
// from the persona's slices.
func windowEdges(b *testing.B, ctx context.Context, c client.Client, ns, endpoint, writeKey string) []time.Duration {
	const users = 100
	now := time.Now().UTC().Truncate(time.Millisecond)
	edge := map[string]time.Time{}
	var sb strings.Builder
	sb.WriteString(`{"batch":[`)
	for i := range users {
		at := now.Add(-time.Hour + 5*time.Second + time.Duration(i)*100*time.Millisecond)
		u := fmt.Sprint("e", i)
		edge[u] = at.Add(time.Hour)
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"type":"track","messageId":"edge-%d","userId":%q,"event":"ping","timestamp":%q}`, i, u, at.Format(time.RFC3339Nano))
	}
	sb.WriteString(`]}`)
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/v1/batch", strings.NewReader(sb.String()))
	req.SetBasicAuth(writeKey, "")
	resp, err := http.DefaultClient.Do(req)
	must(b, err)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("edge batch: %d", resp.StatusCode)
	}
	members := func() map[string]bool {
		var list v1alpha1.PersonaMembershipList
		must(b, c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.PersonaLabel: "pingers"}))
		in := map[string]bool{}
		for _, s := range list.Items {
			for _, m := range s.Members {
				if strings.HasPrefix(m.UserID, "e") {
					in[m.UserID] = true
				}
			}
		}
		return in
	}
	waitFor(b, "the edge users to be members", func() bool { return len(members()) == users })
	if time.Now().After(now.Add(5 * time.Second)) {
		b.Fatalf("the users became members after their first edge: the measure is void")
	}
	exited := map[string]time.Time{}
	deadline := now.Add(time.Minute)
	for len(exited) < users && time.Now().Before(deadline) {
		in := members()
		at := time.Now()
		for u := range edge {
			if _, done := exited[u]; !done && !in[u] {
				exited[u] = at
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	if len(exited) != users {
		b.Fatalf("%d of %d users left the persona within a minute", len(exited), users)
	}
	lat := make([]time.Duration, 0, users)
	for u, at := range exited {
		lat = append(lat, at.Sub(edge[u]))
	}
	slices.Sort(lat)
	if lat[0] < 0 {
		b.Errorf("a user left %s before its edge", -lat[0])
	}
	return lat
}
