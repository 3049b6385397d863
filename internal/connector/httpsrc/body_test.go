package httpsrc

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/usersuccess/persona-operator/internal/connector"
)

func TestParseBodyRejects(t *testing.T) {
	for _, tc := range []struct{ name, tmpl, want string }{
		{"not JSON", `{"a":`, "not valid JSON: unexpected end"},
		{"syntax", `{"a" 1}`, "syntax error at byte"},
		{"trailing data", `{"a":1} {}`, "data after the JSON object"},
		{"an array", `[1]`, "must be a JSON object"},
		{"a string", `"{since}"`, "must be a JSON object"},
		{"part of a string", `{"q":"updated_at > {since}"}`, `must be a whole JSON string value`},
		{"cursor in a string", `{"after":"x{cursor}"}`, `(after)`},
		{"placeholder key", `{"{since}":1}`, "not a key"},
		{"cursor in an array", `{"a":["{cursor}"]}`, "not an array element (a[0])"},
		{"too long", `{"a":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBody(tc.tmpl)
			if connector.ConfigReason(err) != "InvalidBody" || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want InvalidBody with %q", err, tc.want)
			}
		})
	}
}

func TestBodyRender(t *testing.T) {
	const hubspot = `{"filterGroups":[{"filters":[{"propertyName":"hs_lastmodifieddate","operator":"GTE","value":"{since}"}]}],
		"sorts":[{"propertyName":"hs_lastmodifieddate","direction":"ASCENDING"}],"limit":100,"after":"{cursor}"}`
	const intercom = `{"query":{"field":"updated_at","operator":">","value":"{since}"},"pagination":{"per_page":150,"starting_after":"{cursor}"}}`
	ms := json.Number("1777636800000")
	for _, tc := range []struct {
		name, tmpl string
		since      any
		cursor     string
		want       string
	}{
		{"first page: no after", hubspot, ms, "",
			`{"filterGroups":[{"filters":[{"operator":"GTE","propertyName":"hs_lastmodifieddate","value":1777636800000}]}],"limit":100,"sorts":[{"direction":"ASCENDING","propertyName":"hs_lastmodifieddate"}]}`},
		{"next page", hubspot, ms, "200",
			`{"after":"200","filterGroups":[{"filters":[{"operator":"GTE","propertyName":"hs_lastmodifieddate","value":1777636800000}]}],"limit":100,"sorts":[{"direction":"ASCENDING","propertyName":"hs_lastmodifieddate"}]}`},
		{"nested cursor, > unescaped", intercom, json.Number("1777550400"), "WzE2LCJ4Il0=",
			`{"pagination":{"per_page":150,"starting_after":"WzE2LCJ4Il0="},"query":{"field":"updated_at","operator":">","value":1777550400}}`},
		{"a cursor that looks like JSON stays a string", intercom, "2026-05-01T00:00:00Z", `","x":{"y":1}`,
			`{"pagination":{"per_page":150,"starting_after":"\",\"x\":{\"y\":1}"},"query":{"field":"updated_at","operator":">","value":"2026-05-01T00:00:00Z"}}`},
		{"since twice, numbers kept exact", `{"a":"{since}","b":["{since}",12345678901234567890]}`, "s", "",
			`{"a":"s","b":["s",12345678901234567890]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseBody(tc.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			got, err := b.Render(tc.since, tc.cursor)
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %s (%v)\nwant %s", got, err, tc.want)
			}
		})
	}
}

func TestSinceJSON(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for format, want := range map[string]any{
		"": "2026-05-01T12:00:00Z", FormatRFC3339: "2026-05-01T12:00:00Z",
		FormatUnixSeconds: json.Number("1777636800"), FormatUnixMillis: json.Number("1777636800000"),
	} {
		if got, err := sinceJSON(format, at); err != nil || got != want {
			t.Errorf("%q: got %#v, %v; want %#v", format, got, err, want)
		}
	}
	if _, err := sinceJSON("Days", at); connector.ConfigReason(err) != "InvalidIncremental" {
		t.Errorf("unknown format: %v", err)
	}
}

// Whatever the template and the cursor, a template that parses renders a
// JSON object, the cursor is never anything but one string value, and the
// rest of the document is the template's.
func FuzzBody(f *testing.F) {
	f.Add(`{"query":{"value":"{since}"},"pagination":{"starting_after":"{cursor}"}}`, `abc`)
	f.Add(`{"after":"{cursor}","a":[1,{"b":"{since}"}]}`, `"}]`)
	f.Add(`{"x":"\u007bsince}"}`, "")
	f.Fuzz(func(t *testing.T, tmpl, cursor string) {
		if !utf8.ValidString(cursor) {
			return // cursors come from decoded JSON: valid UTF-8
		}
		b, err := ParseBody(tmpl)
		if err != nil {
			if connector.ConfigReason(err) != "InvalidBody" || strings.Contains(err.Error(), tmpl) && len(tmpl) > 8 {
				t.Fatalf("error %v: not an InvalidBody without the template", err)
			}
			return
		}
		out, err := b.Render("SINCE", cursor)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("rendered invalid JSON %s: %v", out, err)
		}
		var want map[string]any
		_ = json.Unmarshal([]byte(tmpl), &want)
		if !reflect.DeepEqual(got, expect(want, cursor)) {
			t.Fatalf("rendered %s from %s", out, tmpl)
		}
	})
}

// expect is the document the template should render to, built separately
// from fill: member by member.
func expect(v any, cursor string) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range t {
			if s, ok := e.(string); ok && s == PlaceholderCursor {
				if cursor != "" {
					out[k] = cursor
				}
				continue
			}
			out[k] = expect(e, cursor)
		}
		return out
	case []any:
		out := []any{}
		for _, e := range t {
			out = append(out, expect(e, cursor))
		}
		return out
	case string:
		if t == PlaceholderSince {
			return "SINCE"
		}
	}
	return v
}
