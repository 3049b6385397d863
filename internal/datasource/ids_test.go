package datasource

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/internal/connector/inline"
)

// TestBadIDsAreRejectedRecords: a user id no membership slice could store
// (254 bytes) or with a NUL is a rejected record, counted and reported by
// record number without its value; the other users are applied.
func TestBadIDsAreRejectedRecords(t *testing.T) {
	long := strings.Repeat("x", 254)
	data := `{"id":"u1","nps":1}` + "\n" + `{"id":"` + long + `","nps":2}` + "\n" +
		`{"id":"a\u0000b","nps":3}` + "\n" + `{"id":"u4","nps":4}` + "\n"
	out := Run(context.Background(), Request{Name: "crm", Source: inline.New("NDJSON", []byte(data)), Mapper: mapper(t),
		Now: func() time.Time { return t0 }})
	if out.FetchErr != nil {
		t.Fatal(out.FetchErr)
	}
	if out.Accepted != 2 || out.Rejected != 2 || len(out.Rejections) != 2 {
		t.Fatalf("accepted %d, rejected %d, rejections %+v", out.Accepted, out.Rejected, out.Rejections)
	}
	for i, want := range []struct {
		num    int64
		reason string
	}{{2, "longer than 253 bytes"}, {3, "control character"}} {
		r := out.Rejections[i]
		if r.Record != want.num || !strings.Contains(r.Reason, want.reason) {
			t.Errorf("rejection %d = %+v, want record %d: %s", i, r, want.num, want.reason)
		}
		if strings.Contains(r.Reason, long) || strings.Contains(r.Reason, "a\x00b") {
			t.Errorf("rejection %d quotes the id: %q", i, r.Reason)
		}
	}
}
