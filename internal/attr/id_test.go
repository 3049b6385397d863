package attr

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/connector"
)

func TestCheckID(t *testing.T) {
	tests := []struct {
		name, id string
		wantErr  string
	}{
		{"ascii", "u-1@example.com", ""},
		{"unicode", "jörg.müller", ""},
		{"253 bytes", strings.Repeat("a", 253), ""},
		{"254 bytes", strings.Repeat("a", 254), "longer than 253 bytes"},
		{"253 characters of 2 bytes", strings.Repeat("é", 253), "longer than 253 bytes"},
		{"NUL", "a\x00b", "control character"},
		{"tab", "a\tb", "control character"},
		{"newline", "a\nb", "control character"},
		{"DEL", "a\x7fb", "control character"},
		{"C1 control", "a\u0085b", "control character"},
		{"invalid UTF-8", "a\xffb", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckID(tt.id, "user id", "id")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckID = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), `user id field "id"`) {
				t.Fatalf("CheckID = %v, want %q naming the field", err, tt.wantErr)
			}
		})
	}
}

// TestMapRejectsBadIDs: every id the mapper keeps (user, account, signal
// user, and a user's account) is checked; the record is rejected with the
// field named and the value never quoted.
func TestMapRejectsBadIDs(t *testing.T) {
	long := strings.Repeat("x", 254)
	users := mustMapper(t, v1alpha1.DataSourceSpec{Key: v1alpha1.RecordKey{UserID: "id", AccountID: "account"}})
	accounts := mustMapper(t, v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityAccount, Key: v1alpha1.RecordKey{AccountID: "account"}})
	signals := mustMapper(t, v1alpha1.DataSourceSpec{Entity: v1alpha1.EntitySignal, Key: v1alpha1.RecordKey{UserID: "id"},
		Signal: &v1alpha1.SignalSpec{Attribute: "tickets"}})
	tests := []struct {
		name    string
		m       *Mapper
		rec     connector.Record
		value   string
		wantErr string
	}{
		{"long user id", users, rec("id", long), long, `user id field "id" is longer than 253 bytes`},
		{"NUL in a user id", users, rec("id", "a\x00b"), "a\x00b", `user id field "id" contains a control character`},
		{"bad account of a user", users, rec("id", "u1", "account", "acme\x00corp"), "acme\x00corp", `account id field "account" contains a control character`},
		{"long account id", accounts, rec("account", long), long, `account id field "account" is longer than 253 bytes`},
		{"invalid UTF-8 signal user", signals, rec("id", "u\xff1"), "u\xff1", `user id field "id" is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.m.Map(tt.rec)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Map = %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), tt.value) {
				t.Errorf("the error quotes the id: %q", err)
			}
		})
	}
	if _, err := users.Map(rec("id", strings.Repeat("a", 253), "account", "")); err != nil {
		t.Errorf("a 253-byte id without an account: %v", err)
	}
}

// FuzzCheckID: an accepted id fits a slice entry and holds no byte that
// could separate parts of a name or hash.
func FuzzCheckID(f *testing.F) {
	for _, s := range []string{"u1", "a\x00b", strings.Repeat("é", 127), "\xff", "a\u2028b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if CheckID(id, "user id", "id") != nil {
			return
		}
		if len(id) > MaxIDLength || utf8.RuneCountInString(id) > 253 || !utf8.ValidString(id) {
			t.Fatalf("accepted %q: %d bytes", id, len(id))
		}
		for _, r := range id {
			if r < 0x20 || (r >= 0x7f && r < 0xa0) {
				t.Fatalf("accepted %q with control character %U", id, r)
			}
		}
	})
}
