package controller

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/connector/httpsrc"
)

// HTTP sources with OAuth2, a throttling server and incremental syncs,
// through the manager: what the user sees in status, Events, metrics and logs.
var _ = Describe("DataSource controller with an OAuth2 HTTP source", func() {
	const (
		clientSecret = "cs-Sup3rSecret-0AUTH"
		refreshToken = "rt-Revok3d-R3fresh-T0ken"
	)
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	oauthSource := func(url, tokenURL string, flow v1alpha1.OAuth2Flow) *v1alpha1.DataSource {
		ds := userSource(ns, "api")
		ds.Spec.Type = v1alpha1.DataSourceHTTP
		ds.Spec.HTTP = &v1alpha1.HTTPSource{URL: url, RecordsPath: "data",
			OAuth2: &v1alpha1.HTTPOAuth2{Flow: flow, TokenURL: tokenURL, SecretRef: v1alpha1.LocalObjectReference{Name: "oauth"}}}
		return ds
	}
	secret := func(data map[string]string) {
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "oauth"}, StringData: data})).To(Succeed())
	}

	It("stalls on a revoked refresh token with the vendor's reason, without retrying in a loop or leaking a secret", func() {
		var tokenCalls, apiCalls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				tokenCalls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = fmt.Fprintf(w, `{"error":"invalid_grant","error_description":"expired access/refresh token"}`)
				return
			}
			apiCalls.Add(1)
		}))
		DeferCleanup(srv.Close)
		secret(map[string]string{"clientId": "cid", "clientSecret": clientSecret, "refreshToken": refreshToken})
		Expect(k8sClient.Create(ctx, oauthSource(srv.URL+"/users", srv.URL+"/token", v1alpha1.OAuth2RefreshToken))).To(Succeed())

		Eventually(func() string { return condition(ns, "api", v1alpha1.StalledCondition) }).Should(Equal("True/" + httpsrc.ReasonTokenRejected))
		msg := conditionMessage(fetchDS(ns, "api").Status.Conditions, v1alpha1.StalledCondition)
		Expect(msg).To(And(ContainSubstring("invalid_grant"), ContainSubstring("expired access/refresh token"), ContainSubstring("/token")))
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("invalid_grant"))
		calls := tokenCalls.Load()
		Consistently(tokenCalls.Load, 3*time.Second).Should(Equal(calls), "the revoked credential is tried again without a change")
		Expect(calls).To(BeNumerically("<=", 2)) // x/oauth2: the client credentials in the header, then in the body
		Expect(apiCalls.Load()).To(BeZero())

		status, err := yaml.Marshal(fetchDS(ns, "api").Status)
		Expect(err).NotTo(HaveOccurred())
		for what, text := range map[string]string{"status": string(status), "events": eventNotes(ns), "logs": managerLogs.String()} {
			for _, s := range []string{clientSecret, refreshToken} {
				Expect(text).NotTo(ContainSubstring(s), "a secret leaked into %s", what)
			}
		}
	})

	It("goes on, in a later sync, with a listing a Retry-After longer than the timeout interrupted, applying nothing before it ends", func() {
		var mu sync.Mutex
		var asked []string
		throttled := false
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			page := r.URL.Query().Get("page")
			asked = append(asked, page)
			if page == "2" && !throttled {
				throttled = true
				w.Header().Set("Retry-After", "3")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			n := map[string]int{"": 1, "2": 2, "3": 3}[page]
			next := ""
			if n < 3 {
				next = fmt.Sprintf(`,"next":"%d"`, n+1)
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"data":[{"id":"p%da","account":"a","nps":1},{"id":"p%db","account":"a","nps":2}]%s}`, n, n, next)
		}))
		DeferCleanup(srv.Close)
		ds := userSource(ns, "api")
		ds.Spec.Type = v1alpha1.DataSourceHTTP
		ds.Spec.Timeout = &metav1.Duration{Duration: time.Second}
		ds.Spec.HTTP = &v1alpha1.HTTPSource{URL: srv.URL + "/users", RecordsPath: "data",
			Pagination: &v1alpha1.HTTPPagination{Type: v1alpha1.PaginationCursor, CursorPath: "next", CursorParam: "page"}}
		Expect(k8sClient.Create(ctx, ds)).To(Succeed())

		Eventually(func() string { return condition(ns, "api", v1alpha1.ReadyCondition) }).Should(Equal("False/SourceDegraded"))
		Expect(meta.FindStatusCondition(fetchDS(ns, "api").Status.Conditions, v1alpha1.ReadyCondition).Message).
			To(ContainSubstring("the listing goes on from that page at the next sync"))
		Expect(storeUsers(ns)).To(BeEmpty(), "half a listing is never applied")

		Eventually(func() string { return condition(ns, "api", v1alpha1.ReadyCondition) }, 20*time.Second).Should(Equal("True/Succeeded"))
		Expect(storeUsers(ns)).To(Equal([]string{"p1a", "p1b", "p2a", "p2b", "p3a", "p3b"}))
		mu.Lock()
		Expect(asked).To(Equal([]string{"", "2", "2", "3"}), "page 1 once, the throttled page 2 again in a later sync, then page 3")
		mu.Unlock()
		Expect(promtest.ToFloat64(httpEvents.WithLabelValues(ns, "api", httpsrc.EventResumed))).To(BeNumerically(">=", 1))
	})

	It("resumes a listing at a throttled page, counts it, and syncs incrementally from the watermark", func() {
		type user struct {
			ID      string `json:"id"`
			Account string `json:"account"`
			NPS     int    `json:"nps"`
			Updated string `json:"updated_at"`
			Deleted bool   `json:"deleted"`
		}
		var mu sync.Mutex
		users := []user{{"u1", "a", 9, "2026-05-01T10:00:00Z", false}, {"u2", "a", 3, "2026-05-01T11:00:00Z", false},
			{"u3", "b", 7, "2026-05-01T12:00:00Z", false}, {"u4", "b", 8, "2026-05-01T13:00:00Z", false}}
		var requests []string
		var tokens atomic.Int32
		throttleNext := true
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if r.URL.Path == "/token" {
				_ = r.ParseForm()
				id, sec, _ := r.BasicAuth()
				if r.PostForm.Get("grant_type") != "client_credentials" || id != "cid" || sec != clientSecret {
					w.WriteHeader(http.StatusUnauthorized)
					_, _ = fmt.Fprint(w, `{"error":"invalid_client"}`)
					return
				}
				tokens.Add(1)
				_, _ = fmt.Fprint(w, `{"access_token":"at-1","token_type":"bearer","expires_in":3600}`)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			requests = append(requests, r.URL.RequestURI())
			if r.Header.Get("Authorization") != "Bearer at-1" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			page := r.URL.Query().Get("page")
			if page == "2" && throttleNext {
				throttleNext = false
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			var sel []user
			since, _ := time.Parse(time.RFC3339, r.URL.Query().Get("updated_since"))
			for _, u := range users {
				if t, _ := time.Parse(time.RFC3339, u.Updated); !t.Before(since) {
					sel = append(sel, u)
				}
			}
			from := 0
			if page == "2" {
				from = 2
			}
			body := map[string]any{"data": sel[min(from, len(sel)):min(from+2, len(sel))]}
			if from == 0 && len(sel) > 2 {
				body["next"] = "?page=2&" + r.URL.Query().Encode()
			}
			Expect(json.NewEncoder(w).Encode(body)).To(Succeed())
		}))
		DeferCleanup(srv.Close)
		secret(map[string]string{"clientId": "cid", "clientSecret": clientSecret})
		ds := oauthSource(srv.URL+"/users", srv.URL+"/token", v1alpha1.OAuth2ClientCredentials)
		ds.Spec.HTTP.Pagination = &v1alpha1.HTTPPagination{Type: v1alpha1.PaginationNextLink, NextLinkPath: "next"}
		ds.Spec.HTTP.RateLimit = &v1alpha1.HTTPRateLimit{RequestsPerMinute: 600}
		ds.Spec.HTTP.Incremental = &v1alpha1.HTTPIncremental{WatermarkField: "updated_at", Param: "updated_since", DeletedField: "deleted"}
		Expect(k8sClient.Create(ctx, ds)).To(Succeed())

		Eventually(func() string { return condition(ns, "api", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
		Expect(storeUsers(ns)).To(Equal([]string{"u1", "u2", "u3", "u4"}))
		Expect(metricValue("persona_datasource_http_events_total", ns, "api")).NotTo(BeEmpty())
		Expect(promtest.ToFloat64(httpEvents.WithLabelValues(ns, "api", httpsrc.EventThrottled))).To(BeEquivalentTo(1))
		Expect(promtest.ToFloat64(httpEvents.WithLabelValues(ns, "api", httpsrc.EventResumed))).To(BeEquivalentTo(1))
		mu.Lock()
		Expect(requests).To(HaveLen(3), "page 1, the throttled page 2, page 2 again: %q", requests)
		Expect(requests[1]).To(Equal(requests[2]))
		mu.Unlock()
		inc := fetchDS(ns, "api").Status.Incremental
		Expect(inc).NotTo(BeNil())
		Expect(inc.LastMode).To(Equal("Full"))
		Expect(inc.Watermark.UTC().Format(time.RFC3339)).To(Equal("2026-05-01T13:00:00Z"))

		By("changing one user and deleting another: an incremental sync from the watermark minus the overlap")
		mu.Lock()
		users[1].NPS, users[1].Updated = 10, "2026-05-01T14:00:00Z"
		users[2].Deleted, users[2].Updated = true, "2026-05-01T14:30:00Z"
		requests = nil
		mu.Unlock()
		annotate(ns, "api", v1alpha1.ReconcileRequestAnnotation, "1")
		Eventually(func() string { return fetchDS(ns, "api").Status.Incremental.LastMode }).Should(Equal("Incremental"))
		Expect(storeUsers(ns)).To(Equal([]string{"u1", "u2", "u4"}))
		Expect(storeAttr(ns, "u2", "nps")).To(BeEquivalentTo(10))
		st := fetchDS(ns, "api").Status.Incremental
		Expect([]int64{st.LastUpserts, st.LastDeletes}).To(Equal([]int64{1, 1}))
		mu.Lock()
		Expect(requests).NotTo(BeEmpty())
		Expect(requests[0]).To(ContainSubstring("updated_since=2026-05-01T12%3A59%3A55Z"))
		mu.Unlock()
		Expect(tokens.Load()).To(BeEquivalentTo(1), "the token is kept across syncs")
		Expect(managerLogs.String()).NotTo(ContainSubstring(clientSecret))
	})
})
