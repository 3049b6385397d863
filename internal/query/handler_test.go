package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/queryapi"
	"github.com/usersuccess/persona-operator/internal/testutil/profiletest"
)

const (
	ns        = "team"
	goodToken = "token-of-alice"
	badToken  = "token-of-nobody"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeReviewer knows one token and allows what allow says; it records what
// it was asked.
type fakeReviewer struct {
	mu     sync.Mutex
	allow  func(Access) bool
	fail   error
	asked  []Access
	tokens []string
}

func (f *fakeReviewer) Authenticate(_ context.Context, token string) (Identity, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = append(f.tokens, token)
	if f.fail != nil {
		return Identity{}, false, f.fail
	}
	if token != goodToken {
		return Identity{}, false, nil
	}
	return Identity{Name: "alice", Groups: []string{"analysts"}}, true, nil
}

func (f *fakeReviewer) Authorize(_ context.Context, _ Identity, a Access) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, a)
	return f.allow == nil || f.allow(a), nil
}

type fixture struct {
	h        *Handler
	reviewer *fakeReviewer
	logs     *bytes.Buffer
	ready    bool
}

func scheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	usersSpec = v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityUser, Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "nps", Type: v1alpha1.TypeInt}, {Name: "role", Type: v1alpha1.TypeString}}}
	accountsSpec = v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "account"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "tier", Type: v1alpha1.TypeString}}}
)

// newFixture: namespace "team" with users u1..u4, accounts, a live persona
// "detractors" (nps <= 6) whose slice records u1 and u9, and two playbooks.
func newFixture(t *testing.T, objs ...client.Object) *fixture {
	t.Helper()
	store := profile.NewStore()
	n := store.Namespace(ns)
	n.Apply(profiletest.SourceData(t, "users", usersSpec,
		map[string]any{"id": "u1", "account": "acme", "nps": "3", "role": "admin"},
		map[string]any{"id": "u2", "account": "acme", "nps": "5", "role": "decision_maker"},
		map[string]any{"id": "u3", "account": "globex", "nps": "9", "role": "decision_maker"},
		map[string]any{"id": "u4", "account": "globex", "role": "user"},
	))
	n.Apply(profiletest.SourceData(t, "accounts", accountsSpec,
		map[string]any{"account": "acme", "tier": "enterprise"}, map[string]any{"account": "globex", "tier": "smb"}))
	live := &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Name: "detractors", Namespace: ns, UID: "p-uid", Labels: map[string]string{"team": "cs"}},
		Spec: v1alpha1.PersonaSpec{Rule: `has(user.nps) && user.nps <= 6`}}
	slice := &v1alpha1.PersonaMembership{ObjectMeta: metav1.ObjectMeta{Name: "detractors-abc", Namespace: ns,
		Labels:          map[string]string{v1alpha1.PersonaLabel: "detractors"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Persona", Name: "detractors", UID: "p-uid", Controller: ptr.To(true)}}},
		Persona: "detractors", MemberCount: 2, Members: []v1alpha1.MembershipEntry{
			{UserID: "u1", AccountID: "acme", EnteredAt: metav1.NewTime(now.Add(-time.Hour))},
			{UserID: "u9", EnteredAt: metav1.NewTime(now.Add(-time.Hour))},
		}}
	orphan := &v1alpha1.PersonaMembership{ObjectMeta: metav1.ObjectMeta{Name: "detractors-old", Namespace: ns,
		Labels: map[string]string{v1alpha1.PersonaLabel: "detractors"}}, Persona: "detractors",
		Members: []v1alpha1.MembershipEntry{{UserID: "u7", EnteredAt: metav1.NewTime(now)}}}
	enter := &v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Name: "welcome", Namespace: ns, UID: "pb-uid"},
		Spec: v1alpha1.PlaybookSpec{PersonaRef: &v1alpha1.LocalObjectReference{Name: "detractors"}, Trigger: v1alpha1.TriggerEnter}}
	unrelated := &v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: ns},
		Spec: v1alpha1.PlaybookSpec{Stage: v1alpha1.StageTrial}}
	dss := []client.Object{
		&v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "users", Namespace: ns}, Spec: usersSpec},
		&v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "accounts", Namespace: ns}, Spec: accountsSpec},
	}
	all := append([]client.Object{live, slice, orphan, enter, unrelated}, dss...)
	all = append(all, objs...)
	c := fake.NewClientBuilder().WithScheme(scheme(t)).WithObjects(all...).Build()
	f := &fixture{reviewer: &fakeReviewer{}, logs: &bytes.Buffer{}, ready: true}
	log := funcr.New(func(prefix, args string) { f.logs.WriteString(prefix + args + "\n") }, funcr.Options{Verbosity: 10})
	f.h = NewHandler(Handler{Reviewer: f.reviewer, Store: store, Reader: c, Log: log,
		Clock: func() time.Time { return now }, Ready: func() bool { return f.ready }}, 2)
	return f
}

// do sends a request and decodes the JSON answer into out (when not nil).
func (f *fixture) do(t *testing.T, method, path, token string, body any, out any) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = httptest.NewRequest(method, path, bytes.NewReader(b))
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: decoding %q: %v", method, path, w.Body.String(), err)
		}
	}
	return w
}

const explainPath = "/v1/namespaces/team/personas/detractors/explain"

func TestAuthenticationAndAuthorization(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		method   string
		token    string
		header   string // a raw Authorization header instead of token
		allow    func(Access) bool
		fail     error
		notReady bool
		code     int
		reason   metav1.StatusReason
		message  string
	}{
		{name: "no token", path: explainPath + "?user=u1", code: 401, reason: metav1.StatusReasonUnauthorized, message: "bearer token is required"},
		{name: "not a bearer token", path: explainPath + "?user=u1", header: "Basic YWxpY2U6cHc=", code: 401, reason: metav1.StatusReasonUnauthorized},
		{name: "an empty bearer token", path: explainPath + "?user=u1", header: "Bearer ", code: 401, reason: metav1.StatusReasonUnauthorized},
		{name: "an invalid token", path: explainPath + "?user=u1", token: badToken, code: 401, reason: metav1.StatusReasonUnauthorized, message: "not valid"},
		{name: "unknown endpoint without a token is still 401", path: "/healthz", code: 401, reason: metav1.StatusReasonUnauthorized},
		{name: "unknown endpoint", path: "/v1/namespaces/team/personas/detractors/members", token: goodToken, code: 404, reason: metav1.StatusReasonNotFound},
		{name: "unknown path", path: "/", token: goodToken, code: 404, reason: metav1.StatusReasonNotFound},
		{name: "invalid namespace", path: "/v1/namespaces/Team_1/personas/detractors/explain?user=u1", token: goodToken, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "wrong method", path: explainPath + "?user=u1", method: http.MethodPost, token: goodToken, code: 405, reason: metav1.StatusReasonMethodNotAllowed},
		{name: "denied", path: explainPath + "?user=u1", token: goodToken, allow: func(Access) bool { return false }, code: 403,
			reason: metav1.StatusReasonForbidden, message: `User "alice" cannot get resource "personas/explain" in API group "personas.usersuccess.io" in the namespace "team"`},
		{name: "the API server cannot be asked", path: explainPath + "?user=u1", token: goodToken, fail: errors.New("connection refused"), code: 503, reason: metav1.StatusReasonServiceUnavailable},
		{name: "not the leader", path: explainPath + "?user=u1", token: goodToken, notReady: true, code: 503, reason: metav1.StatusReasonServiceUnavailable, message: "not the leader"},
		{name: "allowed", path: explainPath + "?user=u1", token: goodToken, code: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.reviewer.allow, f.reviewer.fail = tt.allow, tt.fail
			f.ready = !tt.notReady
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			r := httptest.NewRequest(method, tt.path, nil)
			if tt.token != "" {
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			w := httptest.NewRecorder()
			f.h.ServeHTTP(w, r)
			if w.Code != tt.code {
				t.Fatalf("code = %d (%s), want %d", w.Code, w.Body.String(), tt.code)
			}
			if tt.code == 200 {
				return
			}
			var st metav1.Status
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
				t.Fatalf("error body %q is not a Status: %v", w.Body.String(), err)
			}
			if st.Kind != "Status" || st.Code != int32(tt.code) || st.Reason != tt.reason || !strings.Contains(st.Message, tt.message) {
				t.Errorf("status = %+v, want code %d reason %s message containing %q", st, tt.code, tt.reason, tt.message)
			}
			if tt.code == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
			if strings.Contains(w.Body.String(), goodToken) || strings.Contains(w.Body.String(), badToken) {
				t.Error("a token in the response")
			}
		})
	}
}

func TestAuthorizationAsksForTheVirtualSubresource(t *testing.T) {
	f := newFixture(t)
	f.do(t, http.MethodGet, explainPath+"?user=u1", goodToken, nil, nil)
	f.do(t, http.MethodPost, "/v1/namespaces/team/personas/detractors/preview", goodToken,
		v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: "true"}}, nil)
	want := []Access{{Namespace: ns, Name: "detractors", Subresource: "explain"}, {Namespace: ns, Name: "detractors", Subresource: "preview"}}
	if len(f.reviewer.asked) != 2 || f.reviewer.asked[0] != want[0] || f.reviewer.asked[1] != want[1] {
		t.Errorf("authorized %+v, want %+v", f.reviewer.asked, want)
	}
}

func TestTokensNeverReachTheLog(t *testing.T) {
	f := newFixture(t)
	f.do(t, http.MethodGet, explainPath+"?user=u1", goodToken, nil, nil)
	f.do(t, http.MethodGet, explainPath+"?user=u1", badToken, nil, nil)
	f.reviewer.fail = errors.New("boom")
	f.do(t, http.MethodGet, explainPath+"?user=u1", goodToken, nil, nil)
	logs := f.logs.String()
	if !strings.Contains(logs, `"user"="alice"`) || !strings.Contains(logs, explainPath) {
		t.Fatalf("the request log lacks the caller and path:\n%s", logs)
	}
	for _, secret := range []string{goodToken, badToken, "user=u1"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q:\n%s", secret, logs)
		}
	}
}

func TestExplain(t *testing.T) {
	f := newFixture(t)
	var got queryapi.Explain
	if w := f.do(t, http.MethodGet, explainPath+"?user=u1", goodToken, nil, &got); w.Code != 200 {
		t.Fatalf("code %d: %s", w.Code, w.Body.String())
	}
	if !got.Match || got.Account != "acme" || got.Recorded == nil || !got.Recorded.EnteredAt.Equal(now.Add(-time.Hour)) || !got.Now.Equal(now) {
		t.Errorf("explain u1 = %+v, want a recorded member of acme", got)
	}
	if len(got.Tree.Children) != 2 || got.Tree.Children[1].Expression != "user.nps <= 6" || got.Tree.Children[1].Operands[0].Value != "3" {
		t.Errorf("tree = %+v", got.Tree)
	}

	var absent queryapi.Explain
	f.do(t, http.MethodGet, explainPath+"?user=u4", goodToken, nil, &absent)
	if absent.Match || absent.Recorded != nil || !absent.Tree.Children[1].Absent ||
		len(absent.Attributes) != 1 || absent.Attributes[0] != (queryapi.Attribute{Name: "user.nps", Absent: true}) {
		t.Errorf("explain u4 = %+v, want not a member, user.nps absent", absent)
	}
}

// A persona evaluated in its database: explain's in-memory verdict is
// checked against the membership the database's evaluation recorded.
func TestExplainWarnsWhenTheDatabaseDisagrees(t *testing.T) {
	db := &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns, UID: "db-uid"},
		Spec:   v1alpha1.PersonaSpec{Rule: `has(user.nps) && user.nps <= 6`, Evaluation: v1alpha1.EvaluationDatabase},
		Status: v1alpha1.PersonaStatus{Evaluation: &v1alpha1.EvaluationStatus{Mode: v1alpha1.EvaluationDatabase, Reason: "Database"}}}
	slice := &v1alpha1.PersonaMembership{ObjectMeta: metav1.ObjectMeta{Name: "db-abc", Namespace: ns,
		Labels:          map[string]string{v1alpha1.PersonaLabel: "db"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Persona", Name: "db", UID: "db-uid", Controller: ptr.To(true)}}},
		Persona: "db", MemberCount: 2, Members: []v1alpha1.MembershipEntry{
			{UserID: "u1", AccountID: "acme", EnteredAt: metav1.NewTime(now)}, {UserID: "u3", AccountID: "globex", EnteredAt: metav1.NewTime(now)}}}
	f := newFixture(t, db, slice)
	for user, warn := range map[string]bool{"u1": false, "u2": true, "u3": true, "u4": false} {
		var got queryapi.Explain
		if w := f.do(t, http.MethodGet, "/v1/namespaces/team/personas/db/explain?user="+user, goodToken, nil, &got); w.Code != 200 {
			t.Fatalf("%s: code %d: %s", user, w.Code, w.Body.String())
		}
		warned := slices.ContainsFunc(got.Warnings, func(w string) bool { return strings.Contains(w, "evaluated in its database") })
		if warned != warn {
			t.Errorf("%s (match %v, recorded %v): warnings %q, want a disagreement warning: %v", user, got.Match, got.Recorded != nil, got.Warnings, warn)
		}
	}
	var live queryapi.Explain
	f.do(t, http.MethodGet, explainPath+"?user=u2", goodToken, nil, &live)
	if len(live.Warnings) != 0 {
		t.Errorf("an in-memory persona: warnings %q", live.Warnings)
	}
}

func TestExplainErrors(t *testing.T) {
	tests := []struct {
		name, path string
		code       int
		message    string
	}{
		{"no user", explainPath, 400, `"user"`},
		{"unknown user", explainPath + "?user=nobody", 404, `user "nobody" has no profile`},
		{"unknown persona", "/v1/namespaces/team/personas/ghosts/explain?user=u1", 404, `"ghosts" not found`},
		{"a persona of another namespace", "/v1/namespaces/empty/personas/detractors/explain?user=u1", 404, `not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			var st metav1.Status
			if w := f.do(t, http.MethodGet, tt.path, goodToken, nil, &st); w.Code != tt.code || !strings.Contains(st.Message, tt.message) {
				t.Errorf("code %d %q, want %d containing %q", w.Code, st.Message, tt.code, tt.message)
			}
		})
	}
}

func TestExplainWaitsForDataSources(t *testing.T) {
	// tickets (not loaded: its ConfigMap is missing) declares user.nps too,
	// which the persona reads: it waits, naming the source and its stall.
	tickets := &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "tickets", Namespace: ns}, Spec: usersSpec,
		Status: v1alpha1.DataSourceStatus{Conditions: []metav1.Condition{{Type: v1alpha1.StalledCondition, Status: metav1.ConditionTrue,
			Reason: "ConfigMapNotFound", Message: `ConfigMap "tickets" not found`}}}}
	f := newFixture(t, tickets)
	var st metav1.Status
	w := f.do(t, http.MethodGet, explainPath+"?user=u1", goodToken, nil, &st)
	want := `waiting for DataSources to load: tickets (ConfigMapNotFound: ConfigMap "tickets" not found)`
	if w.Code != 503 || !strings.Contains(st.Message, want) || w.Header().Get("Retry-After") == "" {
		t.Errorf("code %d %q, want 503 %q with Retry-After", w.Code, st.Message, want)
	}
}

func TestSourcesNeverLoadedAreRefused(t *testing.T) {
	// crm (spec.load None) is a User source: it decides which users exist,
	// so explain and preview in memory refuse, with the reason, instead of
	// answering over the sources that are loaded.
	crm := &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "crm", Namespace: ns}, Spec: v1alpha1.DataSourceSpec{
		Entity: v1alpha1.EntityUser, Load: v1alpha1.LoadNone, Attributes: []v1alpha1.AttributeMapping{{Name: "segment", Type: v1alpha1.TypeString}}}}
	f := newFixture(t, crm)
	const want = "DataSources crm have spec.load None"
	var st metav1.Status
	if w := f.do(t, http.MethodGet, explainPath+"?user=u1", goodToken, nil, &st); w.Code != 409 || !strings.Contains(st.Message, want) {
		t.Errorf("explain: code %d %q, want 409 containing %q", w.Code, st.Message, want)
	}
	body := v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: `has(user.nps) && user.nps <= 6`}}
	if w := f.do(t, http.MethodPost, previewPath, goodToken, body, &st); w.Code != 409 || !strings.Contains(st.Message, want) {
		t.Errorf("preview: code %d %q, want 409 containing %q", w.Code, st.Message, want)
	}
}

func TestAStalledSourceTheRuleDoesNotReadDoesNotHold(t *testing.T) {
	// events (not loaded) declares only what the persona does not read: the
	// persona is explained and previewed over the sources that loaded; u9,
	// recorded but without a profile, keeps its membership (events may be
	// the source that knows it).
	events := &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "events", Namespace: ns}, Spec: v1alpha1.DataSourceSpec{
		Entity: v1alpha1.EntityUser, Attributes: []v1alpha1.AttributeMapping{{Name: "logins", Type: v1alpha1.TypeInt}}}}
	f := newFixture(t, events)
	var ex queryapi.Explain
	if w := f.do(t, http.MethodGet, explainPath+"?user=u1", goodToken, nil, &ex); w.Code != 200 || !ex.Match {
		t.Fatalf("explain: code %d match %v, want 200 and a match", w.Code, ex.Match)
	}
	var pv queryapi.Preview
	body := v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: `has(user.nps) && user.nps <= 6`}}
	if w := f.do(t, http.MethodPost, previewPath, goodToken, body, &pv); w.Code != 200 {
		t.Fatalf("preview: code %d", w.Code)
	}
	if !reflect.DeepEqual(pv.Sources, []string{"accounts", "users"}) || pv.Exited.Count != 0 || pv.Members != 3 {
		t.Errorf("preview: sources %v, %d members, %d exited; want accounts, users, 3 members (u1, u2, u9 kept), none exited",
			pv.Sources, pv.Members, pv.Exited.Count)
	}
}

func TestAnInvalidRuleIsReportedWhileSourcesLoad(t *testing.T) {
	events := &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "events", Namespace: ns}, Spec: v1alpha1.DataSourceSpec{
		Entity: v1alpha1.EntityUser, Attributes: []v1alpha1.AttributeMapping{{Name: "logins", Type: v1alpha1.TypeInt}}}}
	f := newFixture(t, events)
	var st metav1.Status
	body := v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: `user.npss <= 6`}}
	if w := f.do(t, http.MethodPost, previewPath, goodToken, body, &st); w.Code != 422 || !strings.Contains(st.Message, "undefined field 'npss'") {
		t.Errorf("code %d %q, want 422 naming the field", w.Code, st.Message)
	}
}

const previewPath = "/v1/namespaces/team/personas/detractors/preview"

func TestPreview(t *testing.T) {
	f := newFixture(t)
	// The edited rule drops has(): u4 (no nps) fails to evaluate; u2 enters,
	// u9 (recorded, no longer a profile) exits; u1 stays.
	edited := v1alpha1.Persona{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Persona"},
		ObjectMeta: metav1.ObjectMeta{Name: "detractors"},
		Spec: v1alpha1.PersonaSpec{Rule: `user.nps <= 6`, Stage: v1alpha1.StageTrial, Insights: []v1alpha1.InsightSpec{
			{Name: "roles", Type: v1alpha1.InsightTopValues, Expression: "user.role"}}},
	}
	var got queryapi.Preview
	if w := f.do(t, http.MethodPost, previewPath+"?sample=1", goodToken, edited, &got); w.Code != 200 {
		t.Fatalf("code %d: %s", w.Code, w.Body.String())
	}
	if !got.Exists || got.Members != 2 || len(got.Sample) != 1 || got.Sample[0] != "u1" || got.EvaluationErrors != 1 {
		t.Errorf("preview = %+v, want 2 members (sample [u1]), 1 evaluation error", got)
	}
	if got.Entered.Count != 1 || got.Entered.Sample[0] != "u2" || got.Exited.Count != 1 || got.Exited.Sample[0] != "u9" {
		t.Errorf("entered %+v exited %+v, want u2 and u9 (u7's slice is not the persona's)", got.Entered, got.Exited)
	}
	if len(got.Sources) != 2 || got.Sources[0] != "accounts" {
		t.Errorf("sources = %v", got.Sources)
	}
	if len(got.Insights) != 1 || got.Insights[0].Name != "roles" || len(got.Insights[0].Values) != 2 {
		t.Errorf("insights = %+v", got.Insights)
	}
	// welcome (personaRef) launches for u2; other (stage trial) now matches too.
	want := []queryapi.PlaybookLaunch{
		{Name: "other", Trigger: v1alpha1.TriggerEnter, By: "stage", Users: 1},
		{Name: "welcome", Trigger: v1alpha1.TriggerEnter, By: "personaRef", Users: 1},
	}
	if len(got.Playbooks) != 2 || got.Playbooks[0] != want[0] || got.Playbooks[1] != want[1] {
		t.Errorf("playbooks = %+v, want %+v", got.Playbooks, want)
	}
}

func TestPreviewOfANewPersona(t *testing.T) {
	f := newFixture(t)
	var got queryapi.Preview
	w := f.do(t, http.MethodPost, "/v1/namespaces/team/personas/enterprise/preview", goodToken,
		v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: `account.tier == "enterprise"`}}, &got)
	if w.Code != 200 || got.Exists || got.Members != 2 || got.Entered.Count != 2 || got.Exited.Count != 0 || len(got.Playbooks) != 0 {
		t.Errorf("code %d preview %+v, want a new persona that 2 users enter, no playbook", w.Code, got)
	}
}

func TestPreviewErrors(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		body    any
		code    int
		message string
	}{
		{"an unknown attribute, with its position", previewPath, v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: "user.npss <= 6"}},
			422, "spec.rule: ERROR: <input>:1:5: undefined field 'npss'"},
		{"a bad insight", previewPath, v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: "true", Insights: []v1alpha1.InsightSpec{
			{Name: "x", Type: v1alpha1.InsightSum, Expression: "user.nope"}}}}, 422, "spec.insights[0] (x)"},
		{"a non-bool rule", previewPath, v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: "user.nps"}}, 422, "must be a bool"},
		{"no rule", previewPath, v1alpha1.Persona{}, 422, "spec.rule: Required value"},
		{"an unknown field", previewPath, map[string]any{"spec": map[string]any{"rule": "true", "rules": "x"}}, 400, `unknown field "rules"`},
		{"another kind", previewPath, map[string]any{"kind": "Playbook", "spec": map[string]any{"rule": "true"}}, 400, "not a personas.usersuccess.io/v1alpha1 Persona"},
		{"another name", previewPath, v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: v1alpha1.PersonaSpec{Rule: "true"}}, 400, "the body is persona team/x"},
		{"another namespace", previewPath, v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Namespace: "x"}, Spec: v1alpha1.PersonaSpec{Rule: "true"}}, 400, "but the request is for team/detractors"},
		{"a bad sample", previewPath + "?sample=5000", v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: "true"}}, 400, `"sample" must be an integer from 0 to 1000`},
		{"a missing DataSource", previewPath, v1alpha1.Persona{Spec: v1alpha1.PersonaSpec{Rule: "true",
			DataSources: []v1alpha1.LocalObjectReference{{Name: "crm"}}}}, 503, "DataSources not found: crm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			var st metav1.Status
			w := f.do(t, http.MethodPost, tt.path, goodToken, tt.body, &st)
			if w.Code != tt.code || !strings.Contains(st.Message, tt.message) {
				t.Errorf("code %d %q, want %d containing %q", w.Code, st.Message, tt.code, tt.message)
			}
		})
	}
}

func TestPreviewBodyIsBounded(t *testing.T) {
	f := newFixture(t)
	r := httptest.NewRequest(http.MethodPost, previewPath, strings.NewReader(`{"spec":{"rule":"`+strings.Repeat("x", maxBody)+`"}}`))
	r.Header.Set("Authorization", "Bearer "+goodToken)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "at most") {
		t.Errorf("code %d %s, want 400 naming the bound", w.Code, w.Body.String())
	}
}

// countingReviewer counts calls to the API server.
type countingReviewer struct {
	authn, authz int
	fail         error
}

func (c *countingReviewer) Authenticate(_ context.Context, token string) (Identity, bool, error) {
	c.authn++
	return Identity{Name: "u"}, token == goodToken, c.fail
}

func (c *countingReviewer) Authorize(_ context.Context, _ Identity, a Access) (bool, error) {
	c.authz++
	return a.Name == "allowed", c.fail
}

func TestCachingReviewer(t *testing.T) {
	inner := &countingReviewer{}
	clock := now
	c := &CachingReviewer{Inner: inner, TTLs: DefaultCacheTTLs, Clock: func() time.Time { return clock }}
	ctx := context.Background()
	for range 3 {
		if _, ok, _ := c.Authenticate(ctx, goodToken); !ok {
			t.Fatal("a good token was refused")
		}
		if _, ok, _ := c.Authenticate(ctx, badToken); ok {
			t.Fatal("a bad token was accepted")
		}
		if ok, _ := c.Authorize(ctx, Identity{Name: "u"}, Access{Name: "allowed"}); !ok {
			t.Fatal("an allowed access was denied")
		}
		if ok, _ := c.Authorize(ctx, Identity{Name: "u"}, Access{Name: "denied"}); ok {
			t.Fatal("a denied access was allowed")
		}
	}
	if inner.authn != 2 || inner.authz != 2 {
		t.Errorf("asked the API server %d/%d times, want once per distinct question", inner.authn, inner.authz)
	}
	// Denials and invalid tokens expire first: a fix to RBAC is seen quickly.
	clock = clock.Add(DefaultCacheTTLs.Deny)
	for _, tok := range []string{goodToken, badToken} {
		if _, _, err := c.Authenticate(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"allowed", "denied"} {
		if _, err := c.Authorize(ctx, Identity{Name: "u"}, Access{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if inner.authn != 3 || inner.authz != 3 {
		t.Errorf("after the deny TTL: %d/%d calls, want 3/3", inner.authn, inner.authz)
	}
	// Another identity is another question.
	if _, err := c.Authorize(ctx, Identity{Name: "v"}, Access{Name: "allowed"}); err != nil {
		t.Fatal(err)
	}
	if inner.authz != 4 {
		t.Errorf("a different identity reused another's answer")
	}
	// Failures to ask are not remembered.
	inner.fail = errors.New("down")
	if _, _, err := c.Authenticate(ctx, "fresh"); err == nil {
		t.Fatal("no error when the API server is down")
	}
	inner.fail = nil
	if _, _, err := c.Authenticate(ctx, "fresh"); err != nil {
		t.Errorf("a failure was cached: %v", err)
	}
}

func TestTTLCacheIsBounded(t *testing.T) {
	var c ttlCache[bool]
	for i := range maxCacheEntries + 10 {
		c.put(string(rune(i))+"k", true, now, time.Minute)
	}
	if len(c.entries) > maxCacheEntries {
		t.Errorf("%d entries, bound %d", len(c.entries), maxCacheEntries)
	}
	if _, ok := c.get("missing", now); ok {
		t.Error("a missing key was found")
	}
}
