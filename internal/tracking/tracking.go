// Package tracking parses and validates calls of Segment's HTTP Tracking API
// (identify, track, group, page and batch), free of I/O: the ingest endpoint
// hands it a request body and the time, and gets back the calls to store or
// the 4xx answer to give.
//
// The limits and answers follow Segment's documentation: at most 32 KB per
// call, 500 KB per batch request (32 KB per call in it), 200 on accept and 400
// with a reason otherwise. Stricter than Segment in two ways, both because the
// calls are stored before they are acknowledged: a call must carry a
// messageId (it de-duplicates retries; every Segment library sets one), and a
// batch is accepted or rejected whole, so a 400 never leaves half a batch
// stored.
package tracking

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Type is a call's type.
type Type string

// The call types the endpoint accepts. Screen and alias calls are refused
// (400 UnsupportedType): nothing turns them into attributes yet.
const (
	Identify Type = "identify"
	Track    Type = "track"
	Group    Type = "group"
	Page     Type = "page"
	// Batch is the endpoint whose body holds many calls; it is not a call type.
	Batch Type = "batch"
)

// Limits, from Segment's HTTP Tracking API documentation.
const (
	// MaxCallBytes is the largest call, alone or inside a batch.
	MaxCallBytes = 32 * 1024
	// MaxBatchBytes is the largest batch request body.
	MaxBatchBytes = 500 * 1024
	// MaxFuture is how far past the receipt a (skew-corrected) timestamp may
	// be: further is a client bug that would keep a windowed aggregate
	// counting an event that has not happened.
	MaxFuture = time.Hour
	// MaxIDBytes bounds messageId and event names.
	MaxIDBytes = 512
	// MaxKeyBytes bounds userId, anonymousId and groupId: the longest user or
	// account id a PersonaMembership entry stores (attr.MaxIDLength).
	MaxKeyBytes = 253
)

// Reasons of a rejected request: the machine-readable part of a 4xx answer.
const (
	ReasonInvalidJSON       = "InvalidJSON"
	ReasonPayloadTooLarge   = "PayloadTooLarge"
	ReasonMissingID         = "MissingUserOrAnonymousId"
	ReasonMissingMessageID  = "MissingMessageId"
	ReasonMissingEvent      = "MissingEvent"
	ReasonMissingGroupID    = "MissingGroupId"
	ReasonFutureTimestamp   = "FutureTimestamp"
	ReasonInvalidTimestamp  = "InvalidTimestamp"
	ReasonUnsupportedType   = "UnsupportedType"
	ReasonInvalidField      = "InvalidField"
	ReasonUnauthorized      = "InvalidWriteKey"
	ReasonEmptyBatch        = "EmptyBatch"
	ReasonDuplicateInBatch  = "DuplicateMessageId"
	ReasonUnsupportedMethod = "MethodNotAllowed"
)

// Error is a rejected request: the HTTP status, a reason and a message that
// names the call and field but never a value (it may be personal).
type Error struct {
	Status  int    `json:"-"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Reason + ": " + e.Message }

func badRequest(reason, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Call is one validated call.
type Call struct {
	Type        Type
	MessageID   string
	UserID      string
	AnonymousID string
	GroupID     string
	// Event is a track call's event name, or a page call's page name.
	Event string
	// Properties (track, page) or Traits (identify, group): a JSON object as
	// sent, stored as is.
	Properties json.RawMessage
	Traits     json.RawMessage
	// Timestamp is when the call happened, corrected for the client's clock
	// skew (see Parse).
	Timestamp time.Time
}

// Request is a parsed request body.
type Request struct {
	Calls []Call
	// WriteKey is the body's writeKey, for clients that send it there instead
	// of as the basic-auth user name.
	WriteKey string
}

// wire is a call as sent. userId and anonymousId may be numbers in the wild.
type wire struct {
	Type        Type            `json:"type"`
	MessageID   json.RawMessage `json:"messageId"`
	UserID      json.RawMessage `json:"userId"`
	AnonymousID json.RawMessage `json:"anonymousId"`
	GroupID     json.RawMessage `json:"groupId"`
	Event       json.RawMessage `json:"event"`
	Name        json.RawMessage `json:"name"`
	Properties  json.RawMessage `json:"properties"`
	Traits      json.RawMessage `json:"traits"`
	Timestamp   string          `json:"timestamp"`
	SentAt      string          `json:"sentAt"`
	WriteKey    string          `json:"writeKey"`
}

type wireBatch struct {
	Batch    []json.RawMessage `json:"batch"`
	SentAt   string            `json:"sentAt"`
	WriteKey string            `json:"writeKey"`
}

// Parse validates the body of a call to the endpoint (identify, track, group,
// page or batch) received at now. Timestamps are corrected for clock skew as
// Segment does: with a sentAt (the call's, else the batch's), a call happened
// at now - (sentAt - timestamp); without a timestamp, at now.
func Parse(endpoint Type, body []byte, now time.Time) (*Request, *Error) {
	limit := MaxCallBytes
	if endpoint == Batch {
		limit = MaxBatchBytes
	}
	if len(body) > limit {
		return nil, &Error{Status: http.StatusBadRequest, Reason: ReasonPayloadTooLarge,
			Message: fmt.Sprintf("the request body is %d bytes, more than the %d a %s call may have", len(body), limit, endpoint)}
	}
	if bytes.Contains(body, []byte(`\u0000`)) {
		// PostgreSQL's jsonb cannot hold a NUL character.
		return nil, badRequest(ReasonInvalidJSON, "the body contains a \\u0000 escape, which cannot be stored")
	}
	if endpoint != Batch {
		c, key, err := parseCall(endpoint, body, "", now)
		if err != nil {
			return nil, err
		}
		return &Request{Calls: []Call{c}, WriteKey: key}, nil
	}
	var b wireBatch
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, badRequest(ReasonInvalidJSON, "the body is not a JSON batch object: %s", jsonProblem(err))
	}
	if len(b.Batch) == 0 {
		return nil, badRequest(ReasonEmptyBatch, "batch: at least one call is required")
	}
	req := &Request{Calls: make([]Call, 0, len(b.Batch)), WriteKey: b.WriteKey}
	seen := make(map[string]int, len(b.Batch))
	for i, raw := range b.Batch {
		if len(raw) > MaxCallBytes {
			return nil, &Error{Status: http.StatusBadRequest, Reason: ReasonPayloadTooLarge,
				Message: fmt.Sprintf("batch[%d] is %d bytes, more than the %d a call may have", i, len(raw), MaxCallBytes)}
		}
		c, _, err := parseCall("", raw, b.SentAt, now)
		if err != nil {
			err.Message = fmt.Sprintf("batch[%d]: %s", i, err.Message)
			return nil, err
		}
		if j, dup := seen[c.MessageID]; dup {
			return nil, badRequest(ReasonDuplicateInBatch, "batch[%d] repeats the messageId of batch[%d]", i, j)
		}
		seen[c.MessageID] = i
		req.Calls = append(req.Calls, c)
	}
	return req, nil
}

// parseCall validates one call; endpoint is its type when it came alone, ""
// inside a batch (where its "type" field says).
func parseCall(endpoint Type, raw []byte, batchSentAt string, now time.Time) (Call, string, *Error) {
	var w wire
	if err := json.Unmarshal(raw, &w); err != nil {
		return Call{}, "", badRequest(ReasonInvalidJSON, "not a JSON call object: %s", jsonProblem(err))
	}
	t := endpoint
	if t == "" {
		t = w.Type
	}
	switch t {
	case Identify, Track, Group, Page:
	case "":
		return Call{}, "", badRequest(ReasonUnsupportedType, "type is required in a batch")
	default:
		return Call{}, "", badRequest(ReasonUnsupportedType, "type %q is not supported (identify, track, group, page)", truncate(string(t)))
	}
	c := Call{Type: t}
	var err *Error
	if c.MessageID, err = idField("messageId", w.MessageID); err != nil {
		return c, "", err
	}
	if c.MessageID == "" {
		return c, "", badRequest(ReasonMissingMessageID, "messageId is required: it de-duplicates retries")
	}
	if c.UserID, err = idField("userId", w.UserID); err != nil {
		return c, "", err
	}
	if c.AnonymousID, err = idField("anonymousId", w.AnonymousID); err != nil {
		return c, "", err
	}
	if c.UserID == "" && c.AnonymousID == "" {
		return c, "", badRequest(ReasonMissingID, "userId or anonymousId is required")
	}
	if c.GroupID, err = idField("groupId", w.GroupID); err != nil {
		return c, "", err
	}
	if err := c.payload(&w); err != nil {
		return c, "", err
	}
	sentAt := w.SentAt
	if sentAt == "" {
		sentAt = batchSentAt
	}
	if c.Timestamp, err = timestamp(w.Timestamp, sentAt, now); err != nil {
		return c, "", err
	}
	return c, w.WriteKey, nil
}

// payload checks and takes the fields of the call's type.
func (c *Call) payload(w *wire) *Error {
	var err *Error
	switch c.Type {
	case Track:
		if c.Event, err = stringField("event", w.Event); err != nil {
			return err
		}
		if c.Event == "" {
			return badRequest(ReasonMissingEvent, "a track call needs an event name")
		}
		c.Properties, err = object("properties", w.Properties)
	case Page:
		if c.Event, err = stringField("name", w.Name); err != nil {
			return err
		}
		c.Properties, err = object("properties", w.Properties)
	case Identify:
		c.Traits, err = object("traits", w.Traits)
	case Group:
		if c.GroupID == "" {
			return badRequest(ReasonMissingGroupID, "a group call needs a groupId")
		}
		c.Traits, err = object("traits", w.Traits)
	}
	return err
}

// idField reads an identifier sent as a string or a number.
func idField(name string, raw json.RawMessage) (string, *Error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return checkLen(name, s)
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return checkLen(name, n.String())
	}
	return "", badRequest(ReasonInvalidField, "%s must be a string or a number", name)
}

func stringField(name string, raw json.RawMessage) (string, *Error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", badRequest(ReasonInvalidField, "%s must be a string", name)
	}
	return checkLen(name, s)
}

func checkLen(name, s string) (string, *Error) {
	limit := MaxKeyBytes
	if name == "messageId" || name == "event" || name == "name" {
		limit = MaxIDBytes
	}
	switch {
	case len(s) > limit:
		return "", badRequest(ReasonInvalidField, "%s is %d bytes, more than %d", name, len(s), limit)
	case !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "", badRequest(ReasonInvalidField, "%s is not valid UTF-8 or contains a control character", name)
	}
	return s, nil
}

// object checks that raw is absent, null or a JSON object; absent is {}.
func object(name string, raw json.RawMessage) (json.RawMessage, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), nil
	}
	if raw[0] != '{' {
		return nil, badRequest(ReasonInvalidField, "%s must be a JSON object", name)
	}
	return raw, nil
}

// timestamp is when the call happened, corrected for skew, and refused when
// it lies more than MaxFuture after now.
func timestamp(ts, sentAt string, now time.Time) (time.Time, *Error) {
	if ts == "" {
		return now, nil
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, badRequest(ReasonInvalidTimestamp, "timestamp is not an ISO 8601 date-time")
	}
	if sentAt != "" {
		sent, err := time.Parse(time.RFC3339Nano, sentAt)
		if err != nil {
			return time.Time{}, badRequest(ReasonInvalidTimestamp, "sentAt is not an ISO 8601 date-time")
		}
		t = now.Add(t.Sub(sent))
	}
	if t.Sub(now) > MaxFuture {
		return time.Time{}, badRequest(ReasonFutureTimestamp, "timestamp is %s in the future (after clock-skew correction), more than %s",
			t.Sub(now).Round(time.Second), MaxFuture)
	}
	return t.UTC(), nil
}

// jsonProblem says what is wrong with a body without quoting it.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "syntax error at byte " + strconv.FormatInt(syn.Offset, 10)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return typ.Field + " has the wrong JSON type"
		}
		return "wrong JSON type"
	}
	return "unexpected end of input"
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
