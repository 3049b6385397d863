package attr

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/connector"
)

func rec(kv ...any) connector.Record {
	r := connector.Record{Num: 1}
	for i := 0; i < len(kv); i += 2 {
		r.Fields = append(r.Fields, kv[i].(string))
		r.Values = append(r.Values, kv[i+1])
	}
	return r
}

func mustMapper(t *testing.T, spec v1alpha1.DataSourceSpec) *Mapper {
	t.Helper()
	m, err := NewMapper(&spec)
	if err != nil {
		t.Fatalf("NewMapper: %v", err)
	}
	return m
}

func TestMapUser(t *testing.T) {
	m := mustMapper(t, v1alpha1.DataSourceSpec{
		Entity: v1alpha1.EntityUser,
		Key:    v1alpha1.RecordKey{UserID: "id", AccountID: "account_id"},
		Attributes: []v1alpha1.AttributeMapping{
			{Name: "nps", Type: v1alpha1.TypeInt},
			{Name: "lastLogin", Type: v1alpha1.TypeTimestamp, From: "last_login"},
			{Name: "email", Type: v1alpha1.TypeString, Optional: ptr.To(false)},
			{Name: "domain", Type: v1alpha1.TypeString, Expression: `record.email.split("@")[1]`},
			{Name: "tier", Type: v1alpha1.TypeString, Entity: v1alpha1.EntityAccount},
		},
	})
	if got := m.UserDecls(); len(got) != 4 || got[3] != (Decl{Name: "domain", Type: String}) {
		t.Fatalf("UserDecls = %v", got)
	}
	if got := m.AccountDecls(); len(got) != 1 || got[0].Name != "tier" {
		t.Fatalf("AccountDecls = %v", got)
	}

	tests := []struct {
		name        string
		rec         connector.Record
		wantUser    *Row
		wantAccount *Row
		wantErr     string
	}{
		{
			name: "full record",
			rec:  rec("id", "u-1", "account_id", "acme", "nps", "4", "last_login", "2026-11-20T10:00:00Z", "email", "a@acme.example", "tier", "enterprise"),
			wantUser: &Row{Key: "u-1", AccountID: "acme", Values: []any{
				int64(4), time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), "a@acme.example", "acme.example",
			}},
			wantAccount: &Row{Key: "acme", Values: []any{"enterprise"}},
		},
		{
			name:     "empty optional cells are absent, no account without account id",
			rec:      rec("id", "u-2", "account_id", "", "nps", "", "email", "b@x.example"),
			wantUser: &Row{Key: "u-2", Values: []any{nil, nil, "b@x.example", "x.example"}},
		},
		{name: "missing user id", rec: rec("nps", "4", "email", "a@b"), wantErr: `user id field "id" is missing or empty`},
		{name: "required attribute missing", rec: rec("id", "u-3"), wantErr: `attribute "email" (field "email") is missing`},
		{name: "bad type", rec: rec("id", "u-4", "email", "a@b", "nps", "high"), wantErr: `attribute "nps" (field "nps"): cannot convert a string to Int`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.Map(tt.rec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.User, tt.wantUser) {
				t.Errorf("user = %#v, want %#v", got.User, tt.wantUser)
			}
			if !reflect.DeepEqual(got.Account, tt.wantAccount) {
				t.Errorf("account = %#v, want %#v", got.Account, tt.wantAccount)
			}
		})
	}
}

func TestMapAccountAndSignal(t *testing.T) {
	acc := mustMapper(t, v1alpha1.DataSourceSpec{
		Entity:     v1alpha1.EntityAccount,
		Key:        v1alpha1.RecordKey{AccountID: "account_id"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "arr", Type: v1alpha1.TypeDouble}},
	})
	got, err := acc.Map(rec("account_id", "acme", "arr", "250000"))
	if err != nil || got.Account == nil || got.Account.Key != "acme" || got.Account.Values[0] != 250000.0 || got.User != nil {
		t.Fatalf("account map = %#v, %v", got, err)
	}
	if _, err := acc.Map(rec("arr", "1")); err == nil {
		t.Fatal("account without id: want error")
	}

	tickets := mustMapper(t, v1alpha1.DataSourceSpec{
		Entity: v1alpha1.EntitySignal,
		Key:    v1alpha1.RecordKey{UserID: "user_id"},
		Signal: &v1alpha1.SignalSpec{Attribute: "tickets"},
		Attributes: []v1alpha1.AttributeMapping{
			{Name: "status", Type: v1alpha1.TypeString},
			{Name: "priority", Type: v1alpha1.TypeInt},
		},
	})
	if d, ok := tickets.SignalDecl(); !ok || d != (Decl{Name: "tickets", Type: List}) {
		t.Fatalf("SignalDecl = %v %v", d, ok)
	}
	got, err = tickets.Map(rec("user_id", "u-1", "status", "open", "priority", "2"))
	if err != nil || got.SignalUser != "u-1" || !reflect.DeepEqual(got.Signal, map[string]any{"status": "open", "priority": int64(2)}) {
		t.Fatalf("signal map = %#v, %v", got, err)
	}

	requests := mustMapper(t, v1alpha1.DataSourceSpec{
		Entity:     v1alpha1.EntitySignal,
		Key:        v1alpha1.RecordKey{UserID: "user_id"},
		Signal:     &v1alpha1.SignalSpec{Attribute: "featureRequests", ValueAttribute: "feature"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "feature", Type: v1alpha1.TypeString}},
	})
	got, err = requests.Map(rec("user_id", "u-1", "feature", "audit_log"))
	if err != nil || got.Signal != "audit_log" {
		t.Fatalf("value signal = %#v, %v", got, err)
	}
	if _, err := requests.Map(rec("user_id", "u-1")); err == nil {
		t.Fatal("value signal without its value: want error")
	}
}

func TestNewMapperRejectsBadSpecs(t *testing.T) {
	tests := []struct {
		name string
		spec v1alpha1.DataSourceSpec
		want string
	}{
		{"reserved user attribute", v1alpha1.DataSourceSpec{Attributes: []v1alpha1.AttributeMapping{{Name: "id", Type: v1alpha1.TypeString}}}, "reserved"},
		{"reserved accountId", v1alpha1.DataSourceSpec{Attributes: []v1alpha1.AttributeMapping{{Name: "accountId", Type: v1alpha1.TypeString}}}, "reserved"},
		{"reserved playbooks", v1alpha1.DataSourceSpec{Attributes: []v1alpha1.AttributeMapping{{Name: "playbooks", Type: v1alpha1.TypeMap}}},
			`spec.attributes[0] (playbooks): attribute name "playbooks" is reserved (built in: user.playbooks is the Playbook controller's run state`},
		{"reserved playbooks signal", v1alpha1.DataSourceSpec{Entity: v1alpha1.EntitySignal, Signal: &v1alpha1.SignalSpec{Attribute: "playbooks"},
			Attributes: []v1alpha1.AttributeMapping{{Name: "x", Type: v1alpha1.TypeString}}}, `spec.signal.attribute "playbooks" is reserved`},
		{"bad expression", v1alpha1.DataSourceSpec{Attributes: []v1alpha1.AttributeMapping{{Name: "x", Type: v1alpha1.TypeString, Expression: "record.("}}}, "spec.attributes[0] (x): expression"},
		{"signal without spec", v1alpha1.DataSourceSpec{Entity: v1alpha1.EntitySignal}, "requires spec.signal"},
		{"value attribute not declared", v1alpha1.DataSourceSpec{Entity: v1alpha1.EntitySignal, Signal: &v1alpha1.SignalSpec{Attribute: "f", ValueAttribute: "nope"},
			Attributes: []v1alpha1.AttributeMapping{{Name: "feature", Type: v1alpha1.TypeString}}}, "valueAttribute"},
		{"account attribute on a signal", v1alpha1.DataSourceSpec{Entity: v1alpha1.EntitySignal, Signal: &v1alpha1.SignalSpec{Attribute: "f"},
			Attributes: []v1alpha1.AttributeMapping{{Name: "tier", Type: v1alpha1.TypeString, Entity: v1alpha1.EntityAccount}}}, "only allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMapper(&tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestExpressionTypes(t *testing.T) {
	m := mustMapper(t, v1alpha1.DataSourceSpec{
		Attributes: []v1alpha1.AttributeMapping{
			{Name: "seen", Type: v1alpha1.TypeTimestamp, Expression: "timestamp(record.last_seen)"},
			{Name: "tags", Type: v1alpha1.TypeList, Expression: `record.tags.split(",")`},
			{Name: "big", Type: v1alpha1.TypeBool, Expression: "record.seats > 100"},
			{Name: "missing", Type: v1alpha1.TypeString, Expression: "record.nope"},
		},
	})
	got, err := m.Map(rec("id", "u", "last_seen", "2026-01-02T03:04:05Z", "tags", "a,b", "seats", float64(120)))
	if err != nil {
		t.Fatal(err)
	}
	want := []any{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), []any{"a", "b"}, true, nil}
	if !reflect.DeepEqual(got.User.Values, want) {
		t.Fatalf("values = %#v, want %#v", got.User.Values, want)
	}
}

// Issue 13 row 4: a failing expression's message never carries the record's
// values into status.rejections (the view role reads it).
func TestMapErrorsQuoteNoValues(t *testing.T) {
	required := false
	m := mustMapper(t, v1alpha1.DataSourceSpec{
		Attributes: []v1alpha1.AttributeMapping{
			{Name: "seen", Type: v1alpha1.TypeTimestamp, Expression: "timestamp(record.last_seen)", Optional: &required},
			{Name: "n", Type: v1alpha1.TypeInt, Expression: "int(record.count)", Optional: &required},
			{Name: "k", Type: v1alpha1.TypeString, Expression: "record.meta[record.email]", Optional: &required},
		},
	})
	secrets := []string{"jane@example.com", "123-45-6789"}
	for _, r := range []connector.Record{
		rec("id", "u", "last_seen", "jane@example.com 123-45-6789", "count", "1", "meta", map[string]any{}, "email", "x"),
		rec("id", "u", "last_seen", "2026-01-02T03:04:05Z", "count", "123-45-6789", "meta", map[string]any{}, "email", "x"),
		rec("id", "u", "last_seen", "2026-01-02T03:04:05Z", "count", "1", "meta", map[string]any{}, "email", "jane@example.com"),
	} {
		_, err := m.Map(r)
		if err == nil {
			t.Fatalf("%v: want an error", r.Values)
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("the error quotes a value: %v", err)
			}
		}
		if !strings.Contains(err.Error(), "expression failed: ") {
			t.Errorf("error %q does not say what failed", err)
		}
	}
}

func TestSafeError(t *testing.T) {
	for in, want := range map[string]string{
		`invalid RFC 3339 timestamp "jane@example.com"`:           "invalid RFC 3339 timestamp",
		`no such key: jane@example.com`:                           "no such key",
		`strconv.ParseInt: parsing "123-45-6789": invalid syntax`: "strconv.ParseInt",
		`division by zero`:                                        "division by zero",
		`"quoted first"`:                                          "evaluation failed",
	} {
		if got := SafeError(errors.New(in)); got != want {
			t.Errorf("SafeError(%q) = %q, want %q", in, got, want)
		}
	}
}
