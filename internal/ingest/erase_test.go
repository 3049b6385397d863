package ingest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/query/querytest"
	"github.com/usersuccess/persona-operator/internal/queryapi"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
	"github.com/usersuccess/persona-operator/internal/testutil/operatortest"
)

// TestErasureThroughTheQueryEndpoint: the right to erasure, end to end on a
// real control plane and a real event store. A caller without a grant of
// create on datasources/erase gets 403 and nothing is deleted; one bound to
// config/rbac/events_eraser_role.yaml erases: the user's events and traits
// are gone from PostgreSQL and the user from the persona's membership
// slices, and the other user stays.
func TestErasureThroughTheQueryEndpoint(t *testing.T) {
	if !cluster.Available() {
		t.Skip("no control plane binaries (" + cluster.AssetsEnv + "): run through make test")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env, op, ns, dsn := eventsOperator(ctx, t, "erasure_through_query", operatortest.Options{Query: true})
	c := env.Client
	const writeKey = "wk-erasure"
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "segment"},
		StringData: map[string]string{"writeKey": writeKey}}))
	must(t, c.Create(ctx, &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "product"},
		Spec: v1alpha1.DataSourceSpec{Type: v1alpha1.DataSourceEvents, Entity: v1alpha1.EntityUser,
			Attributes: []v1alpha1.AttributeMapping{{Name: "plan", Type: v1alpha1.TypeString}},
			Events: &v1alpha1.EventsSource{WriteKeySecretRef: v1alpha1.SecretKeySelector{Name: "segment", Key: "writeKey"},
				Aggregates: []v1alpha1.EventAggregate{{Name: "logins", Function: v1alpha1.AggregateCount, Event: "login"}}}}}))
	must(t, c.Create(ctx, &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "active"},
		Spec: v1alpha1.PersonaSpec{Rule: `has(user.logins) && user.logins >= 1`}}))
	waitFor(t, "the DataSource to be Ready", func() bool {
		var ds v1alpha1.DataSource
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "product"}, &ds) == nil &&
			cluster.Condition(ds.Status.Conditions, v1alpha1.ReadyCondition) == "True/Succeeded"
	})
	batch := `{"batch":[
		{"type":"identify","messageId":"m1","userId":"ada","traits":{"plan":"pro"}},
		{"type":"track","messageId":"m2","userId":"ada","event":"login"},
		{"type":"track","messageId":"m3","userId":"ada","event":"login"},
		{"type":"track","messageId":"m4","userId":"bob","event":"login"}]}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+op.Events.Addr()+"/v1/batch", strings.NewReader(batch))
	req.SetBasicAuth(writeKey, "")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the batch: %d", resp.StatusCode)
	}
	waitFor(t, "ada and bob to be members", func() bool { return slices.Equal(members(t, c, ns, "active"), []string{"ada", "bob"}) })

	cs := env.Clientset
	eraser, err := querytest.RepoClusterRole(ctx, cs, cluster.RepoPath("config", "rbac", "events_eraser_role.yaml"))
	must(t, err)
	reader, err := querytest.RepoClusterRole(ctx, cs, cluster.RepoPath("config", "rbac", "query_reader_role.yaml"))
	must(t, err)
	analyst, err := querytest.ServiceAccountToken(ctx, cs, ns, "analyst")
	must(t, err)
	must(t, querytest.Bind(ctx, cs, ns, "analyst", reader, "preview"))
	dpo, err := querytest.ServiceAccountToken(ctx, cs, ns, "dpo")
	must(t, err)
	must(t, querytest.BindAllowing(ctx, cs, ns, "dpo", eraser, authorizationv1.ResourceAttributes{Namespace: ns,
		Verb: "create", Group: v1alpha1.GroupVersion.Group, Resource: "datasources", Subresource: "erase"}))

	erase := func(token string) (int, []byte) {
		return queryCall(t, op, fmt.Sprintf(queryapi.ErasePath, ns), token, queryapi.EraseRequest{UserID: "ada"})
	}
	// The query reader may explain and preview, not erase.
	if code, body := erase(analyst); code != http.StatusForbidden || !strings.Contains(string(body), `cannot create resource \"datasources/erase\"`) {
		t.Fatalf("an erasure by the query reader: %d %s, want 403", code, body)
	}
	if n := storedRows(t, dsn, ns, "ada"); n != [2]int{3, 1} {
		t.Fatalf("after a refused erasure ada has %v (events, users rows), want [3 1]", n)
	}
	code, body := erase(dpo)
	var out queryapi.Erasure
	if code != http.StatusOK || json.Unmarshal(body, &out) != nil || out != (queryapi.Erasure{Namespace: ns, UserID: "ada", Events: 3}) {
		t.Fatalf("the erasure: %d %s, want 200 with 3 events", code, body)
	}
	if n := storedRows(t, dsn, ns, "ada"); n != [2]int{0, 0} {
		t.Errorf("after the erasure ada has %v (events, users rows) in PostgreSQL, want none", n)
	}
	if n := storedRows(t, dsn, ns, "bob"); n != [2]int{1, 1} {
		t.Errorf("after ada's erasure bob has %v (events, users rows), want [1 1]", n)
	}
	waitFor(t, "ada to leave the persona", func() bool { return slices.Equal(members(t, c, ns, "active"), []string{"bob"}) })
}

// members lists the user ids of a persona's PersonaMembership slices, sorted.
func members(t *testing.T, c client.Client, ns, persona string) []string {
	t.Helper()
	var list v1alpha1.PersonaMembershipList
	must(t, c.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.PersonaLabel: persona}))
	var out []string
	for _, s := range list.Items {
		for _, m := range s.Members {
			out = append(out, m.UserID)
		}
	}
	slices.Sort(out)
	return out
}

// storedRows counts a user's rows in the event store: events, and users (the
// identify traits and first/last seen).
func storedRows(t *testing.T, dsn, ns, user string) [2]int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	must(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	var n [2]int
	must(t, conn.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM persona_events.events WHERE namespace = $1 AND user_id = $2),
		(SELECT count(*) FROM persona_events.users WHERE namespace = $1 AND user_id = $2)`, ns, user).Scan(&n[0], &n[1]))
	return n
}

// queryCall POSTs body to the operator's query endpoint as token, trusting
// its self-signed certificate.
func queryCall(t *testing.T, op *operatortest.Operator, path, token string, body any) (int, []byte) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(op.Query.CertificatePEM()) {
		t.Fatal("the query endpoint has no self-signed certificate")
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, "https://"+op.Query.Address()+path, bytes.NewReader(b))
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	must(t, err)
	defer func() { _ = resp.Body.Close() }()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
