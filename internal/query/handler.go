package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/internal/profile"
)

// Handler answers the endpoint's requests. Reads of Kubernetes objects go
// through Reader (the manager's cache); profiles come from Store.
type Handler struct {
	Reviewer Reviewer
	Store    *profile.Store
	Reader   client.Reader
	Log      logr.Logger
	// Clock is `now` for rules; nil: time.Now.
	Clock func() time.Time
	// Ready reports whether this replica holds the data (it is the leader, so
	// its DataSource controller fills the store). Nil: always.
	Ready func() bool
	// Eraser serves erasures; nil (the manager has no event store): an
	// erasure is answered 404.
	Eraser Eraser
	// evaluations bounds how many previews and explanations run at once: each
	// holds a namespace's read lock, which DataSource syncs wait for.
	evaluations chan struct{}
}

// NewHandler returns a handler that runs at most maxConcurrent evaluations
// at once.
func NewHandler(h Handler, maxConcurrent int) *Handler {
	h.evaluations = make(chan struct{}, max(maxConcurrent, 1))
	return &h
}

// maxBody bounds a preview's request body (a Persona: its rule is at most 8 KiB).
const maxBody = 1 << 20

// request is a parsed, authorized request.
type request struct {
	http   *http.Request
	id     Identity
	access Access
}

// ServeHTTP authenticates, routes, authorizes, then answers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	id, herr := h.serve(rec, r)
	if herr != nil {
		writeStatus(rec, herr)
	}
	// The path only: the query string holds user ids. Never the token.
	h.Log.V(1).Info("query", "user", id.Name, "method", r.Method, "path", r.URL.Path, "status", rec.code)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (Identity, *httpError) {
	token, ok := bearer(r)
	if !ok {
		return Identity{}, errUnauthorized("a bearer token is required (Authorization: Bearer …)")
	}
	id, ok, err := h.Reviewer.Authenticate(r.Context(), token)
	if errors.Is(err, ErrThrottled) {
		return Identity{}, &httpError{code: http.StatusTooManyRequests, reason: metav1.StatusReasonTooManyRequests,
			msg: "too many requests with tokens the endpoint does not know yet; retry in a second"}
	}
	if err != nil {
		h.Log.Error(err, "authenticating a query request")
		return Identity{}, errUnavailable("cannot verify the token with the API server")
	}
	if !ok {
		return Identity{}, errUnauthorized("the bearer token is not valid")
	}
	access, method, herr := route(r.URL.Path)
	if herr != nil {
		return id, herr
	}
	if r.Method != method {
		return id, &httpError{code: http.StatusMethodNotAllowed, reason: metav1.StatusReasonMethodNotAllowed,
			msg: fmt.Sprintf("%s is served for %s only", access.Subresource, method)}
	}
	if herr := h.authorize(r.Context(), id, access); herr != nil {
		return id, herr
	}
	if h.Ready != nil && !h.Ready() {
		return id, errUnavailable("this manager replica is not the leader: its profile store is empty; query the leader")
	}
	req := request{http: r, id: id, access: access}
	var body any
	switch access.Subresource {
	case SubresourceExplain:
		body, herr = h.withSlot(r.Context(), func() (any, *httpError) { return h.explain(req) })
	case SubresourcePreview:
		body, herr = h.withSlot(r.Context(), func() (any, *httpError) { return h.preview(req) })
	case SubresourceErase:
		body, herr = h.erase(req)
	}
	if herr != nil {
		return id, herr
	}
	writeJSON(w, http.StatusOK, body)
	return id, nil
}

func (h *Handler) authorize(ctx context.Context, id Identity, a Access) *httpError {
	allowed, err := h.Reviewer.Authorize(ctx, id, a)
	if err != nil {
		h.Log.Error(err, "authorizing a query request", "user", id.Name)
		return errUnavailable("cannot check authorization with the API server")
	}
	if !allowed {
		ra := ResourceAttributes(a)
		msg := fmt.Sprintf(
			`%s.personas.usersuccess.io %q is forbidden: User %q cannot %s resource "%s/%s" in API group "personas.usersuccess.io" in the namespace %q`,
			ra.Resource, ra.Name, id.Name, ra.Verb, ra.Resource, a.Subresource, a.Namespace)
		if a.Subresource == SubresourcePreview {
			msg += " (a preview evaluates any rule over every profile of the namespace, so it needs a grant on personas/preview " +
				"for all personas of the namespace; one limited by resourceNames does not allow it)"
		}
		return &httpError{code: http.StatusForbidden, reason: metav1.StatusReasonForbidden, msg: msg}
	}
	return nil
}

// withSlot runs fn when an evaluation slot is free, or gives up with the request.
func (h *Handler) withSlot(ctx context.Context, fn func() (any, *httpError)) (any, *httpError) {
	select {
	case h.evaluations <- struct{}{}:
		defer func() { <-h.evaluations }()
		return fn()
	case <-ctx.Done():
		return nil, errUnavailable("gave up waiting for an evaluation slot")
	}
}

func (h *Handler) now() time.Time {
	if h.Clock != nil {
		return h.Clock()
	}
	return time.Now()
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", false
	}
	return token, true
}

// route parses /v1/namespaces/NS/personas/NAME/{explain,preview} and
// /v1/namespaces/NS/erase.
func route(path string) (Access, string, *httpError) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) == 4 && parts[0] == "v1" && parts[1] == "namespaces" && parts[3] == SubresourceErase {
		a := Access{Namespace: parts[2], Subresource: SubresourceErase}
		if errs := validation.IsDNS1123Label(a.Namespace); len(errs) > 0 {
			return a, "", errBadRequest(fmt.Sprintf("invalid namespace %q: %s", a.Namespace, strings.Join(errs, "; ")))
		}
		return a, http.MethodPost, nil
	}
	if len(parts) != 6 || parts[0] != "v1" || parts[1] != "namespaces" || parts[3] != "personas" {
		return Access{}, "", &httpError{code: http.StatusNotFound, reason: metav1.StatusReasonNotFound,
			msg: "no such endpoint; served: /v1/namespaces/NS/personas/NAME/explain and …/preview, /v1/namespaces/NS/erase"}
	}
	a := Access{Namespace: parts[2], Name: parts[4], Subresource: parts[5]}
	if errs := validation.IsDNS1123Label(a.Namespace); len(errs) > 0 {
		return a, "", errBadRequest(fmt.Sprintf("invalid namespace %q: %s", a.Namespace, strings.Join(errs, "; ")))
	}
	if errs := validation.IsDNS1123Subdomain(a.Name); len(errs) > 0 {
		return a, "", errBadRequest(fmt.Sprintf("invalid persona name %q: %s", a.Name, strings.Join(errs, "; ")))
	}
	switch a.Subresource {
	case SubresourceExplain:
		return a, http.MethodGet, nil
	case SubresourcePreview:
		return a, http.MethodPost, nil
	}
	return a, "", &httpError{code: http.StatusNotFound, reason: metav1.StatusReasonNotFound,
		msg: fmt.Sprintf("no such endpoint %q; served: explain, preview", a.Subresource)}
}

// httpError is an error response, written as a Kubernetes Status.
type httpError struct {
	code   int
	reason metav1.StatusReason
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errUnauthorized(msg string) *httpError {
	return &httpError{code: http.StatusUnauthorized, reason: metav1.StatusReasonUnauthorized, msg: msg}
}

func errUnavailable(msg string) *httpError {
	return &httpError{code: http.StatusServiceUnavailable, reason: metav1.StatusReasonServiceUnavailable, msg: msg}
}

func errBadRequest(msg string) *httpError {
	return &httpError{code: http.StatusBadRequest, reason: metav1.StatusReasonBadRequest, msg: msg}
}

func errNotFound(msg string) *httpError {
	return &httpError{code: http.StatusNotFound, reason: metav1.StatusReasonNotFound, msg: msg}
}

// errConflict: the objects as they are refuse the request (a persona over
// sources never loaded into memory, asked for an in-memory answer).
func errConflict(msg string) *httpError {
	return &httpError{code: http.StatusConflict, reason: metav1.StatusReasonConflict, msg: msg}
}

func errInvalid(msg string) *httpError {
	return &httpError{code: http.StatusUnprocessableEntity, reason: metav1.StatusReasonInvalid, msg: msg}
}

// errInternal reports a failed read of Kubernetes objects.
func errInternal(what string, err error) *httpError {
	var status interface{ Status() metav1.Status }
	if errors.As(err, &status) {
		if s := status.Status(); s.Code != 0 {
			return &httpError{code: int(s.Code), reason: s.Reason, msg: what + ": " + s.Message}
		}
	}
	return &httpError{code: http.StatusInternalServerError, reason: metav1.StatusReasonInternalError, msg: what + ": " + err.Error()}
}

func writeStatus(w http.ResponseWriter, e *httpError) {
	if e.code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="persona-operator query"`)
	}
	switch e.code {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.code, metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Code: int32(e.code), Reason: e.reason, Message: e.msg,
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // personal data
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// statusRecorder remembers the status code for the request log.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}
