package query

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/internal/queryapi"
)

// recordingEraser stands in for ingest.Service in these unit tests (the
// envtest in internal/ingest erases from a real event store).
type recordingEraser struct {
	mu     sync.Mutex
	erased []string
	n      int64
	err    error
}

func (e *recordingEraser) Erase(_ context.Context, namespace, userID string) (int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.erased = append(e.erased, namespace+"/"+userID)
	return e.n, e.err
}

const erasePath = "/v1/namespaces/team/erase"

func TestErase(t *testing.T) {
	long := strings.Repeat("u", 254)
	tests := []struct {
		name    string
		method  string
		path    string
		body    any
		eraser  *recordingEraser
		allow   func(Access) bool
		code    int
		reason  metav1.StatusReason
		message string
		erased  []string
	}{
		{name: "erased", body: queryapi.EraseRequest{UserID: "u1"}, eraser: &recordingEraser{n: 7}, code: 200, erased: []string{"team/u1"}},
		{name: "nothing stored is still an erasure", body: queryapi.EraseRequest{UserID: "ghost"}, eraser: &recordingEraser{}, code: 200, erased: []string{"team/ghost"}},
		{name: "no event store", body: queryapi.EraseRequest{UserID: "u1"}, code: 404, reason: metav1.StatusReasonNotFound, message: "--events-database-dsn-file"},
		{name: "denied", body: queryapi.EraseRequest{UserID: "u1"}, eraser: &recordingEraser{}, allow: func(Access) bool { return false }, code: 403,
			reason: metav1.StatusReasonForbidden, message: `User "alice" cannot create resource "datasources/erase" in API group "personas.usersuccess.io" in the namespace "team"`},
		{name: "GET", method: http.MethodGet, eraser: &recordingEraser{}, code: 405, reason: metav1.StatusReasonMethodNotAllowed},
		{name: "no body", eraser: &recordingEraser{}, code: 400, reason: metav1.StatusReasonBadRequest, message: `{"userId": "..."}`},
		{name: "not JSON", body: "u1", eraser: &recordingEraser{}, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "an unknown field", body: map[string]string{"user": "u1"}, eraser: &recordingEraser{}, code: 400, reason: metav1.StatusReasonBadRequest, message: "unknown field"},
		{name: "too large", body: map[string]string{"userId": strings.Repeat("x", 5000)}, eraser: &recordingEraser{}, code: 400, reason: metav1.StatusReasonBadRequest, message: "4 KiB"},
		{name: "empty user id", body: queryapi.EraseRequest{}, eraser: &recordingEraser{}, code: 422, reason: metav1.StatusReasonInvalid, message: "userId is required"},
		{name: "too long a user id", body: queryapi.EraseRequest{UserID: long}, eraser: &recordingEraser{}, code: 422, reason: metav1.StatusReasonInvalid, message: "253"},
		{name: "a control character", body: queryapi.EraseRequest{UserID: "u\n1"}, eraser: &recordingEraser{}, code: 422, reason: metav1.StatusReasonInvalid, message: "control character"},
		{name: "the store fails", body: queryapi.EraseRequest{UserID: "u1"}, eraser: &recordingEraser{err: errors.New("connection reset")}, code: 503,
			reason: metav1.StatusReasonServiceUnavailable, message: "retry", erased: []string{"team/u1"}},
		{name: "an invalid namespace", path: "/v1/namespaces/Team_1/erase", body: queryapi.EraseRequest{UserID: "u1"}, eraser: &recordingEraser{}, code: 400, reason: metav1.StatusReasonBadRequest},
		{name: "not a persona subresource", path: "/v1/namespaces/team/personas/detractors/erase", body: queryapi.EraseRequest{UserID: "u1"}, eraser: &recordingEraser{}, code: 404, reason: metav1.StatusReasonNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.reviewer.allow = tt.allow
			if tt.eraser != nil {
				f.h.Eraser = tt.eraser
			}
			method, path := tt.method, tt.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = erasePath
			}
			if tt.code == 200 {
				var out queryapi.Erasure
				w := f.do(t, method, path, goodToken, tt.body, &out)
				want := queryapi.Erasure{Namespace: ns, UserID: tt.erased[0][len("team/"):], Events: tt.eraser.n}
				if w.Code != 200 || out != want {
					t.Errorf("%d %+v, want 200 %+v", w.Code, out, want)
				}
			} else {
				var st metav1.Status
				w := f.do(t, method, path, goodToken, tt.body, &st)
				if w.Code != tt.code || st.Reason != tt.reason || !strings.Contains(st.Message, tt.message) {
					t.Errorf("%d %+v, want %d %s with %q", w.Code, st, tt.code, tt.reason, tt.message)
				}
			}
			if tt.eraser != nil && strings.Join(tt.eraser.erased, ",") != strings.Join(tt.erased, ",") {
				t.Errorf("erased %v, want %v", tt.eraser.erased, tt.erased)
			}
			if strings.Contains(f.logs.String(), "u1") || strings.Contains(f.logs.String(), "ghost") {
				t.Errorf("a user id in the log:\n%s", f.logs)
			}
		})
	}
}

func TestEraseAsksForCreateOnDatasourcesErase(t *testing.T) {
	f := newFixture(t)
	f.h.Eraser = &recordingEraser{}
	f.do(t, http.MethodPost, erasePath, goodToken, queryapi.EraseRequest{UserID: "u1"}, nil)
	want := Access{Namespace: ns, Subresource: SubresourceErase}
	if len(f.reviewer.asked) != 1 || f.reviewer.asked[0] != want {
		t.Fatalf("authorized %+v, want %+v", f.reviewer.asked, want)
	}
	ra := ResourceAttributes(want)
	if ra.Verb != "create" || ra.Resource != "datasources" || ra.Subresource != "erase" || ra.Name != "" || ra.Namespace != ns ||
		ra.Group != "personas.usersuccess.io" {
		t.Errorf("SubjectAccessReview attributes %+v, want create datasources/erase in %s", ra, ns)
	}
}
