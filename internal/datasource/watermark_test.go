package datasource

import (
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

func TestWatermark(t *testing.T) {
	want := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		v    any
		want time.Time
		ok   bool
	}{
		{"timestamp", want, want, true},
		{"RFC 3339", "2026-05-01T12:00:00Z", want, true},
		{"RFC 3339 with offset", "2026-05-01T14:00:00+02:00", want, true},
		{"Salesforce", "2026-05-01T12:00:00.000+0000", want, true},
		{"Unix seconds", json.Number("1777636800"), want, true},
		{"Unix milliseconds", json.Number("1777636800000"), want, true},
		{"float seconds", float64(1777636800), want, true},
		{"null", nil, time.Time{}, true},
		{"words", "yesterday", time.Time{}, false},
		{"negative", json.Number("-5"), time.Time{}, false},
		{"bool", true, time.Time{}, false},
	}
	for _, tc := range cases {
		got, ok := watermark(tc.v)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("%s: %s %v, want %s %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzWatermark: any JSON scalar reads without panicking, and an accepted
// number is never before 1970.
func FuzzWatermark(f *testing.F) {
	for _, s := range []string{"1777636800", "1777636800000", "-1", "1e300", "2026-05-01T12:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []any{s, json.Number(s)} {
			if ts, ok := watermark(v); ok && ts.Before(time.Unix(0, 0)) && !ts.IsZero() {
				if _, isNum := v.(json.Number); isNum {
					t.Fatalf("%q read as %s", s, ts)
				}
			}
		}
	})
}

// An HTTP source with spec.http.incremental goes through the same modes as
// a PostgreSQL one: full first, then deltas from the watermark minus the
// overlap, full again after fullResyncInterval.
func TestIncrementalModeHTTP(t *testing.T) {
	ds := &v1alpha1.DataSource{Spec: v1alpha1.DataSourceSpec{Type: v1alpha1.DataSourceHTTP, HTTP: &v1alpha1.HTTPSource{
		URL: "https://api.example.com/users",
		Incremental: &v1alpha1.HTTPIncremental{WatermarkField: "updated_at", Param: "updated_since",
			Overlap: &metav1.Duration{Duration: time.Minute}, FullResyncInterval: &metav1.Duration{Duration: time.Hour}},
	}}}
	now := t0.Add(10 * time.Minute)
	if m := IncrementalMode(ds, false, false, "", now); m.Delta {
		t.Fatalf("first load: %+v", m)
	}
	wm, full := metav1.NewTime(t0.Add(5*time.Minute)), metav1.NewTime(t0)
	ds.Status.Incremental = &v1alpha1.IncrementalStatus{Watermark: &wm, LastFullSyncTime: &full}
	m := IncrementalMode(ds, true, false, "", now)
	if !m.Delta || !m.Since.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("delta: %+v", m)
	}
	if m := IncrementalMode(ds, true, false, "", t0.Add(time.Hour)); m.Delta {
		t.Fatalf("after fullResyncInterval: %+v", m)
	}
	read := IncrementalRead(&ds.Spec, Mode{Delta: true})
	if read == nil || read.WatermarkField != "updated_at" || !read.Delta || read.WatermarkSpec != "spec.http.incremental.watermarkField" {
		t.Fatalf("read: %+v", read)
	}
	ds.Spec.HTTP.Incremental = nil
	if IncrementalOf(&ds.Spec) != nil || IncrementalRead(&ds.Spec, Mode{}) != nil {
		t.Fatal("a source without incremental settings is incremental")
	}
}
