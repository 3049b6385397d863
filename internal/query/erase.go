package query

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode"

	"github.com/usersuccess/persona-operator/internal/queryapi"
	"github.com/usersuccess/persona-operator/internal/tracking"
)

// Eraser deletes one user's stored events and traits in a namespace and
// removes the user from the namespace's Events sources in the profile store
// (ingest.Service.Erase). It returns how many stored calls were deleted.
type Eraser interface {
	Erase(ctx context.Context, namespace, userID string) (int64, error)
}

// maxEraseBody bounds an erasure's body: one user id.
const maxEraseBody = 4 << 10

// erase serves POST /v1/namespaces/NS/erase. The user id is never logged: it
// is the personal data being erased.
func (h *Handler) erase(req request) (any, *httpError) {
	if h.Eraser == nil {
		return nil, errNotFound("erasure deletes a user's events from the event store, and this manager has none " +
			"(it runs without --events-database-dsn-file)")
	}
	var in queryapi.EraseRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, req.http.Body, maxEraseBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errBadRequest("the body is larger than 4 KiB: it holds one user id")
		}
		if errors.Is(err, io.EOF) {
			return nil, errBadRequest(`the body must be {"userId": "..."}`)
		}
		return nil, errBadRequest(`the body is not {"userId": "..."}: ` + err.Error())
	}
	if msg := invalidUserID(in.UserID); msg != "" {
		return nil, errInvalid(msg)
	}
	n, err := h.Eraser.Erase(req.http.Context(), req.access.Namespace, in.UserID)
	if err != nil {
		h.Log.Error(err, "erasing a user's events", "namespace", req.access.Namespace)
		return nil, errUnavailable("the event store did not commit the erasure; retry")
	}
	h.Log.Info("erased a user's events", "namespace", req.access.Namespace, "by", req.id.Name, "events", n)
	return queryapi.Erasure{Namespace: req.access.Namespace, UserID: in.UserID, Events: n}, nil
}

// invalidUserID says why id cannot be a stored user id ("" when it can be).
func invalidUserID(id string) string {
	switch {
	case id == "":
		return "userId is required"
	case len(id) > tracking.MaxKeyBytes:
		return "userId is longer than 253 bytes: no stored call has such an id"
	case strings.ContainsFunc(id, unicode.IsControl):
		return "userId holds a control character: no stored call has such an id"
	}
	return ""
}
