package tracking

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name     string
		endpoint Type
		body     string
		want     []Call
		writeKey string
	}{
		{
			name: "track", endpoint: Track,
			body: `{"messageId":"m1","userId":"u1","event":"login","properties":{"plan":"pro"},"timestamp":"2026-12-02T11:00:00Z"}`,
			want: []Call{{Type: Track, MessageID: "m1", UserID: "u1", Event: "login", Properties: json.RawMessage(`{"plan":"pro"}`),
				Timestamp: now.Add(-time.Hour)}},
		},
		{
			name: "identify with numeric userId and no timestamp", endpoint: Identify,
			body: `{"messageId":"m2","userId":42,"traits":{"email":"x@example.com"}}`,
			want: []Call{{Type: Identify, MessageID: "m2", UserID: "42", Traits: json.RawMessage(`{"email":"x@example.com"}`), Timestamp: now}},
		},
		{
			name: "group", endpoint: Group,
			body: `{"messageId":"m3","anonymousId":"a1","groupId":"acme","traits":{"industry":"retail"},"writeKey":"wk"}`,
			want: []Call{{Type: Group, MessageID: "m3", AnonymousID: "a1", GroupID: "acme", Traits: json.RawMessage(`{"industry":"retail"}`),
				Timestamp: now}},
			writeKey: "wk",
		},
		{
			name: "page without properties", endpoint: Page,
			body: `{"messageId":"m4","userId":"u1","name":"Pricing"}`,
			want: []Call{{Type: Page, MessageID: "m4", UserID: "u1", Event: "Pricing", Properties: json.RawMessage(`{}`), Timestamp: now}},
		},
		{
			// The client's clock is 2 h fast: sentAt and timestamp both are, and the
			// difference (the call happened 10 s before it was sent) is what counts.
			name: "batch with clock skew corrected by sentAt", endpoint: Batch,
			body: `{"sentAt":"2026-12-02T14:00:10Z","batch":[
				{"type":"track","messageId":"b1","userId":"u1","event":"e","timestamp":"2026-12-02T14:00:00Z"},
				{"type":"identify","messageId":"b2","userId":"u1","timestamp":"2026-12-02T14:00:10Z","sentAt":"2026-12-02T14:00:10Z"}]}`,
			want: []Call{
				{Type: Track, MessageID: "b1", UserID: "u1", Event: "e", Properties: json.RawMessage(`{}`), Timestamp: now.Add(-10 * time.Second)},
				{Type: Identify, MessageID: "b2", UserID: "u1", Traits: json.RawMessage(`{}`), Timestamp: now},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Parse(tt.endpoint, []byte(tt.body), now)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if req.WriteKey != tt.writeKey {
				t.Errorf("writeKey = %q, want %q", req.WriteKey, tt.writeKey)
			}
			if len(req.Calls) != len(tt.want) {
				t.Fatalf("got %d calls, want %d", len(req.Calls), len(tt.want))
			}
			for i, c := range req.Calls {
				w := tt.want[i]
				if c.Type != w.Type || c.MessageID != w.MessageID || c.UserID != w.UserID || c.AnonymousID != w.AnonymousID ||
					c.GroupID != w.GroupID || c.Event != w.Event || string(c.Properties) != string(w.Properties) ||
					string(c.Traits) != string(w.Traits) || !c.Timestamp.Equal(w.Timestamp) {
					t.Errorf("call %d = %+v\nwant %+v", i, c, w)
				}
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	big := `{"messageId":"m","userId":"u","event":"e","properties":{"x":"` + strings.Repeat("a", MaxCallBytes) + `"}}`
	bigInBatch := `{"batch":[` + big + `]}`
	var calls []string
	for i := range 20 {
		calls = append(calls, fmt.Sprintf(`{"type":"track","messageId":"m%d","userId":"u","event":"e","properties":{"x":"%s"}}`, i,
			strings.Repeat("a", 30*1024)))
	}
	hugeBatch := `{"batch":[` + strings.Join(calls, ",") + `]}`
	tests := []struct {
		name     string
		endpoint Type
		body     string
		reason   string
		message  string
	}{
		{"malformed JSON", Track, `{"messageId":`, ReasonInvalidJSON, "not a JSON call object"},
		{"not an object", Track, `[1,2]`, ReasonInvalidJSON, "wrong JSON type"},
		{"oversized call", Track, big, ReasonPayloadTooLarge, "more than the 32768 a track call may have"},
		{"oversized call in a batch", Batch, bigInBatch, ReasonPayloadTooLarge, "batch[0] is"},
		{"oversized batch", Batch, hugeBatch, ReasonPayloadTooLarge, "more than the 512000 a batch call may have"},
		{"missing ids", Track, `{"messageId":"m","event":"e"}`, ReasonMissingID, "userId or anonymousId is required"},
		{"empty ids", Identify, `{"messageId":"m","userId":"","anonymousId":null}`, ReasonMissingID, "userId or anonymousId"},
		{"missing messageId", Track, `{"userId":"u","event":"e"}`, ReasonMissingMessageID, "messageId is required"},
		{"track without event", Track, `{"messageId":"m","userId":"u"}`, ReasonMissingEvent, "event name"},
		{"group without groupId", Group, `{"messageId":"m","userId":"u"}`, ReasonMissingGroupID, "groupId"},
		{"future timestamp", Track, `{"messageId":"m","userId":"u","event":"e","timestamp":"2027-01-01T00:00:00Z"}`,
			ReasonFutureTimestamp, "in the future"},
		{"future after skew correction", Batch,
			`{"sentAt":"2026-12-02T12:00:00Z","batch":[{"type":"track","messageId":"m","userId":"u","event":"e","timestamp":"2026-12-02T14:00:00Z"}]}`,
			ReasonFutureTimestamp, "batch[0]: timestamp is 2h0m0s in the future"},
		{"bad timestamp", Track, `{"messageId":"m","userId":"u","event":"e","timestamp":"yesterday"}`, ReasonInvalidTimestamp, "ISO 8601"},
		{"bad sentAt", Track, `{"messageId":"m","userId":"u","event":"e","timestamp":"2026-12-02T11:00:00Z","sentAt":"now"}`,
			ReasonInvalidTimestamp, "sentAt"},
		{"properties not an object", Track, `{"messageId":"m","userId":"u","event":"e","properties":[1]}`, ReasonInvalidField, "properties"},
		{"userId an object", Track, `{"messageId":"m","userId":{"a":1},"event":"e"}`, ReasonInvalidField, "userId must be"},
		{"event a number", Track, `{"messageId":"m","userId":"u","event":3}`, ReasonInvalidField, "event must be a string"},
		{"userId too long", Track, `{"messageId":"m","userId":"` + strings.Repeat("u", MaxKeyBytes+1) + `","event":"e"}`,
			ReasonInvalidField, "userId is 254 bytes"},
		{"userId with a control character", Track, `{"messageId":"m","userId":"a\nb","event":"e"}`, ReasonInvalidField, "control character"},
		{"NUL escape", Track, `{"messageId":"m","userId":"u","event":"e","properties":{"x":"a\u0000b"}}`, ReasonInvalidJSON, "\\u0000"},
		{"empty batch", Batch, `{"batch":[]}`, ReasonEmptyBatch, "at least one call"},
		{"batch call without type", Batch, `{"batch":[{"messageId":"m","userId":"u"}]}`, ReasonUnsupportedType, "type is required"},
		{"batch call of unsupported type", Batch, `{"batch":[{"type":"alias","messageId":"m","userId":"u"}]}`, ReasonUnsupportedType, `"alias"`},
		{"batch with a bad second call", Batch,
			`{"batch":[{"type":"track","messageId":"a","userId":"u","event":"e"},{"type":"track","messageId":"b","event":"e"}]}`,
			ReasonMissingID, "batch[1]: userId or anonymousId"},
		{"duplicate messageId in a batch", Batch,
			`{"batch":[{"type":"track","messageId":"a","userId":"u","event":"e"},{"type":"track","messageId":"a","userId":"u","event":"e"}]}`,
			ReasonDuplicateInBatch, "batch[1] repeats the messageId of batch[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Parse(tt.endpoint, []byte(tt.body), now)
			if err == nil {
				t.Fatalf("accepted: %+v", req)
			}
			if err.Status != http.StatusBadRequest || err.Reason != tt.reason || !strings.Contains(err.Message, tt.message) {
				t.Errorf("got %d %s %q, want 400 %s containing %q", err.Status, err.Reason, err.Message, tt.reason, tt.message)
			}
		})
	}
}

// The answer never quotes what was sent: ids, traits and properties may be
// personal.
func TestRejectionsQuoteNoValue(t *testing.T) {
	secret := "jane.doe@example.com"
	bodies := []string{
		`{"messageId":"m","userId":"` + secret + `"}`,
		`{"messageId":"m","userId":"u","event":"e","timestamp":"` + secret + `"}`,
		`{"messageId":"m","userId":"u","event":"e","properties":"` + secret + `"}`,
		`{"messageId":"m","userId":"u","event":{"` + secret + `":1}}`,
		`{"messageId":"m","userId":"u","event":"e","timestamp":"2026-12-02T11:00:00Z","sentAt":"` + secret + `"}`,
	}
	for _, b := range bodies {
		_, err := Parse(Track, []byte(b), now)
		if err == nil {
			t.Fatalf("accepted %s", b)
		}
		if strings.Contains(err.Message, secret) {
			t.Errorf("message quotes the value: %s", err.Message)
		}
	}
}

// FuzzParse: whatever the body, Parse returns calls or a 400, never panics,
// and every call it accepts is valid: ids present, bounded, timestamps not
// far in the future, payloads JSON objects.
func FuzzParse(f *testing.F) {
	f.Add("track", `{"messageId":"m1","userId":"u1","event":"login","properties":{"a":1}}`)
	f.Add("batch", `{"sentAt":"2026-12-02T12:00:00Z","batch":[{"type":"group","messageId":"m","userId":"u","groupId":"g","traits":{}}]}`)
	f.Add("identify", `{"messageId":1,"anonymousId":2,"traits":null,"timestamp":"2026-12-02T12:30:00+01:00"}`)
	f.Add("page", `{"messageId":"m","userId":"u","name":null,"properties":{}}`)
	f.Fuzz(func(t *testing.T, endpoint, body string) {
		req, err := Parse(Type(endpoint), []byte(body), now)
		if err != nil {
			if err.Status != http.StatusBadRequest || err.Reason == "" || err.Message == "" {
				t.Fatalf("bad rejection %+v", err)
			}
			return
		}
		if len(req.Calls) == 0 {
			t.Fatal("accepted no call")
		}
		for _, c := range req.Calls {
			if c.MessageID == "" || (c.UserID == "" && c.AnonymousID == "") || len(c.UserID) > MaxKeyBytes {
				t.Fatalf("invalid call accepted: %+v", c)
			}
			if c.Timestamp.Sub(now) > MaxFuture {
				t.Fatalf("future timestamp accepted: %v", c.Timestamp)
			}
			for _, obj := range []json.RawMessage{c.Properties, c.Traits} {
				if obj == nil {
					continue
				}
				var m map[string]any
				if json.Unmarshal(obj, &m) != nil {
					t.Fatalf("payload is not an object: %s", obj)
				}
			}
		}
	})
}
