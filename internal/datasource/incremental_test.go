package datasource

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/breaker"
	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/profile"
)

func incrementalDS(mut func(*v1alpha1.DataSource)) *v1alpha1.DataSource {
	return ds(func(d *v1alpha1.DataSource) {
		d.Spec.Type = v1alpha1.DataSourcePostgreSQL
		d.Spec.Postgres = &v1alpha1.PostgresSource{Query: "SELECT 1", Incremental: &v1alpha1.PostgresIncremental{
			WatermarkColumn: "updated_at", FullResyncInterval: &metav1.Duration{Duration: time.Hour}}}
		d.Status.ReferencesVersion = "r1"
		d.Status.Incremental = &v1alpha1.IncrementalStatus{Watermark: at(-2 * time.Minute), LastFullSyncTime: at(-30 * time.Minute)}
		if mut != nil {
			mut(d)
		}
	})
}

func TestIncrementalMode(t *testing.T) {
	tests := []struct {
		name      string
		ds        *v1alpha1.DataSource
		loaded    bool
		forced    bool
		refs      string
		wantDelta bool
		wantWhy   string
	}{
		{"delta from the watermark", incrementalDS(nil), true, false, "r1", true, "rows changed"},
		{"not incremental", ds(nil), true, false, "", false, "not incremental"},
		{"restart: full load first", incrementalDS(nil), false, false, "r1", false, "first load"},
		{"no full load yet", incrementalDS(func(d *v1alpha1.DataSource) { d.Status.Incremental = nil }), true, false, "r1", false, "no full load"},
		{"no watermark yet", incrementalDS(func(d *v1alpha1.DataSource) { d.Status.Incremental.Watermark = nil }), true, false, "r1", false, "no watermark"},
		{"spec changed", incrementalDS(func(d *v1alpha1.DataSource) { d.Generation = 3 }), true, false, "r1", false, "spec changed"},
		{"Secret changed", incrementalDS(nil), true, false, "r2", false, "Secret changed"},
		{"forced", incrementalDS(nil), true, true, "r1", false, "force-apply"},
		{"full reconcile due", incrementalDS(func(d *v1alpha1.DataSource) { d.Status.Incremental.LastFullSyncTime = at(-time.Hour) }),
			true, false, "r1", false, "fullResyncInterval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := IncrementalMode(tc.ds, tc.loaded, tc.forced, tc.refs, t0)
			if m.Delta != tc.wantDelta || !strings.Contains(m.Why, tc.wantWhy) {
				t.Fatalf("got %+v, want delta %v why %q", m, tc.wantDelta, tc.wantWhy)
			}
			if m.Delta && !m.Since.Equal(t0.Add(-2*time.Minute-5*time.Second)) {
				t.Errorf("since %s, want the watermark minus the default 5s overlap", m.Since)
			}
		})
	}
}

func TestDeltaDecision(t *testing.T) {
	tests := []struct {
		name       string
		baseline   int64
		deletes    int64
		max        int32
		forced     bool
		wantApply  bool
		wantReason string
	}{
		{"upserts only", 100, 0, 0, false, true, ""},
		{"deletes within the limit", 100, 10, 10, false, true, ""},
		{"deletes over the limit", 100, 11, 10, false, false, breaker.ReasonSuspiciousShrink},
		{"deleting everything", 100, 100, 50, false, false, breaker.ReasonEmptyResult},
		{"forced", 100, 100, 10, true, true, ""},
		{"upserts into an empty source", 0, 0, 10, false, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := DeltaDecision(tc.baseline, tc.deletes, tc.max, tc.forced)
			if d.Apply != tc.wantApply || d.Reason != tc.wantReason {
				t.Fatalf("got %+v", d)
			}
			if tc.wantReason == breaker.ReasonSuspiciousShrink && !strings.Contains(d.Message, "incremental sync deletes 11 of the 100") {
				t.Errorf("message %q", d.Message)
			}
		})
	}
}

// records is a Source of fixed records.
type records []connector.Record

func (rs records) Fetch(_ context.Context, visit connector.Visitor) error {
	for _, r := range rs {
		if err := visit(r, nil); err != nil {
			return err
		}
	}
	return nil
}

func TestRunIncremental(t *testing.T) {
	spec := v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityUser, Key: v1alpha1.RecordKey{UserID: "id"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "nps", Type: v1alpha1.TypeInt}}}
	m, err := attr.NewMapper(&spec)
	if err != nil {
		t.Fatal(err)
	}
	fields := []string{"id", "nps", "updated_at", "deleted"}
	src := records{
		{Num: 1, Fields: fields, Values: []any{"a", int64(1), t0, false}},
		{Num: 2, Fields: fields, Values: []any{"b", int64(2), t0.Add(time.Minute), true}},
		{Num: 3, Fields: fields, Values: []any{"c", int64(3), nil, nil}},
		{Num: 4, Fields: fields, Values: []any{"d", int64(4), "yesterday", false}},
	}
	req := func(delta bool) Request {
		return Request{Name: "db", Source: src, Mapper: m, Baseline: 10, MaxShrinkPercent: 50, Now: func() time.Time { return t0 },
			Incremental: &Incremental{WatermarkField: "updated_at", DeletedField: "deleted", Delta: delta, What: "the query has no column"}}
	}

	full := Run(context.Background(), req(false))
	if full.FetchErr != nil || full.Data == nil || full.Delta != nil {
		t.Fatalf("full: %+v", full)
	}
	if full.Accepted != 2 || full.Rejected != 1 || !full.Watermark.Equal(t0.Add(time.Minute)) {
		t.Errorf("full load: accepted %d rejected %d watermark %s; want the soft-deleted row left out, "+
			"the string watermark rejected, the deleted row's watermark counted", full.Accepted, full.Rejected, full.Watermark)
	}

	delta := Run(context.Background(), req(true))
	if delta.FetchErr != nil || delta.Delta == nil || delta.Data != nil {
		t.Fatalf("delta: %+v", delta)
	}
	if delta.Accepted != 2 || delta.Deletes != 1 || delta.Delta.Len() != 3 || !delta.Decision.Apply {
		t.Errorf("delta: upserts %d deletes %d keys %d decision %+v", delta.Accepted, delta.Deletes, delta.Delta.Len(), delta.Decision)
	}

	missing := req(true)
	missing.Incremental.WatermarkField = "modified"
	if out := Run(context.Background(), missing); !connector.IsConfig(out.FetchErr) || !strings.Contains(out.FetchErr.Error(), `no column "modified"`) {
		t.Errorf("a watermark column the query lacks: %v", out.FetchErr)
	}
}

// deletedValues: a status string marks deletes; newestFirst: of several
// changes to one key, the first listed applies.
func TestRunIncrementalValuesNewestFirst(t *testing.T) {
	spec := v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityUser, Key: v1alpha1.RecordKey{UserID: "id"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "status", Type: v1alpha1.TypeString}}}
	m, err := attr.NewMapper(&spec)
	if err != nil {
		t.Fatal(err)
	}
	fields := []string{"id", "status", "created"}
	src := records{ // newest first
		{Num: 1, Fields: fields, Values: []any{"a", "active", t0.Add(3 * time.Minute)}},
		{Num: 2, Fields: fields, Values: []any{"b", "canceled", t0.Add(2 * time.Minute)}},
		{Num: 3, Fields: fields, Values: []any{"a", "canceled", t0.Add(time.Minute)}},
		{Num: 4, Fields: fields, Values: []any{"c", true, t0}},
	}
	inc := func(delta, newestFirst bool) *Incremental {
		return &Incremental{WatermarkField: "created", DeletedField: "status", DeletedValues: []string{"canceled"},
			NewestFirst: newestFirst, Delta: delta, What: "a record has no field"}
	}
	run := func(i *Incremental) Outcome {
		return Run(context.Background(), Request{Name: "api", Source: src, Mapper: m, Baseline: 10, MaxShrinkPercent: 100,
			Now: func() time.Time { return t0 }, Incremental: i})
	}
	full := run(inc(false, true))
	if full.Accepted != 1 || full.Rejected != 1 || full.Rejections[0].Reason != `deleted field "status" is a boolean, not a string` {
		t.Errorf("full load: accepted %d, rejections %+v; want a (its canceled row skipped too), c rejected", full.Accepted, full.Rejections)
	}
	newest := run(inc(true, true))
	if newest.Accepted != 1 || newest.Deletes != 1 || newest.Superseded != 1 {
		t.Errorf("newest first: upserts %d deletes %d superseded %d; want a upserted, b deleted, a's older delete left out",
			newest.Accepted, newest.Deletes, newest.Superseded)
	}
	last := run(inc(true, false))
	if last.Accepted != 1 || last.Deletes != 2 || last.Superseded != 0 {
		t.Errorf("in order: upserts %d deletes %d superseded %d; want every change applied, the last one winning",
			last.Accepted, last.Deletes, last.Superseded)
	}
}

func TestRecordIncremental(t *testing.T) {
	spec := v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityUser, Key: v1alpha1.RecordKey{UserID: "id"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "nps", Type: v1alpha1.TypeInt}}}
	m, err := attr.NewMapper(&spec)
	if err != nil {
		t.Fatal(err)
	}
	delta := profile.NewDeltaBuilder("db", m).Finish()
	d := incrementalDS(nil)
	d.Status.RecordsAccepted = 100
	before := d.Status.Incremental.Watermark.Time
	wm := t0.Add(time.Minute)

	// A held-back delta leaves the watermark, so the next sync reads the same rows.
	Record(d, Outcome{Delta: delta, Deletes: 60, Watermark: wm, Decision: breaker.Decision{Reason: breaker.ReasonSuspiciousShrink}}, false, t0)
	if inc := d.Status.Incremental; !inc.Watermark.Time.Equal(before) || d.Status.HeldBackRecords != 40 || d.Status.RecordsAccepted != 100 {
		t.Fatalf("held back: %+v held %d", inc, d.Status.HeldBackRecords)
	}

	// An applied delta moves it forward, never back.
	Record(d, Outcome{Delta: delta, Accepted: 3, Watermark: wm, Decision: breaker.Decision{Apply: true},
		Applied: &profile.DeltaResult{Applied: true, Upserted: 2, Records: 102, Digest: "xxh64:1"}}, true, t0)
	inc := d.Status.Incremental
	if !inc.Watermark.Time.Equal(wm) || inc.LastMode != ModeIncremental || inc.LastUpserts != 2 ||
		d.Status.RecordsAccepted != 102 || d.Status.Digest != "xxh64:1" || !inc.LastFullSyncTime.Time.Equal(t0.Add(-30*time.Minute)) {
		t.Fatalf("applied delta: %+v, records %d digest %s", inc, d.Status.RecordsAccepted, d.Status.Digest)
	}
	Record(d, Outcome{Delta: delta, Watermark: t0, Decision: breaker.Decision{Apply: true}, Applied: &profile.DeltaResult{Applied: true, Records: 102}}, true, t0)
	if !d.Status.Incremental.Watermark.Time.Equal(wm) {
		t.Errorf("the watermark moved back to %s", d.Status.Incremental.Watermark)
	}

	// A full load sets it and the full sync time.
	data := profile.NewBuilder("db", 0, m, 0).Finish()
	Record(d, Outcome{Data: data, Watermark: t0, Decision: breaker.Decision{Apply: true}}, true, t0.Add(time.Hour))
	inc = d.Status.Incremental
	if !inc.Watermark.Time.Equal(t0) || inc.LastMode != ModeFull || !inc.LastFullSyncTime.Time.Equal(t0.Add(time.Hour)) {
		t.Errorf("full load: %+v", inc)
	}
}

// interrupting is a listing that stops after its records at from, with an
// Interrupted error (when stop), and can be started at a position.
type interrupting struct {
	recs records
	from int
	stop int // the position it stops at; 0: the end
}

func (s interrupting) Fetch(ctx context.Context, visit connector.Visitor) error {
	end := len(s.recs)
	if s.stop > 0 {
		end = s.stop
	}
	if err := s.recs[s.from:end].Fetch(ctx, visit); err != nil {
		return err
	}
	if s.stop > 0 {
		return &connector.Interrupted{Resume: s.stop, Err: errors.New("HTTP 429")}
	}
	return nil
}

// An interrupted sync is not applied; resumed, it is the sync a whole listing
// would have been, counts and rejections included.
func TestRunResumesInterrupted(t *testing.T) {
	spec := v1alpha1.DataSourceSpec{Entity: v1alpha1.EntityUser, Key: v1alpha1.RecordKey{UserID: "id"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "nps", Type: v1alpha1.TypeInt}}}
	m, err := attr.NewMapper(&spec)
	if err != nil {
		t.Fatal(err)
	}
	fields := []string{"id", "nps", "updated"}
	src := records{
		{Num: 1, Fields: fields, Values: []any{"a", int64(1), t0}},
		{Num: 2, Fields: fields, Values: []any{"b", "not a number", t0}},
		{Num: 3, Fields: fields, Values: []any{"c", int64(3), t0.Add(time.Minute)}},
		{Num: 4, Fields: fields, Values: []any{"d", int64(4), t0}},
	}
	for _, delta := range []bool{false, true} {
		req := func(s connector.Source, resume *Partial) Request {
			return Request{Name: "api", Source: s, Mapper: m, MaxShrinkPercent: 100, Now: time.Now, Resume: resume,
				Incremental: &Incremental{WatermarkField: "updated", Delta: delta}}
		}
		first := Run(context.Background(), req(interrupting{recs: src, stop: 2}, nil))
		var intr *connector.Interrupted
		if !errors.As(first.FetchErr, &intr) || first.Partial == nil || first.Data != nil || first.Delta != nil || first.Partial.Read() != 2 {
			t.Fatalf("delta %v: interrupted sync: err %v, partial %v", delta, first.FetchErr, first.Partial)
		}
		second := Run(context.Background(), req(interrupting{recs: src, from: first.Partial.Position.(int)}, first.Partial))
		if second.FetchErr != nil || second.Partial != nil || second.Rejected != 1 || second.Rejections[0].Record != 2 {
			t.Fatalf("delta %v: resumed: err %v, rejected %+v", delta, second.FetchErr, second.Rejections)
		}
		if second.Accepted != 3 || !second.Watermark.Equal(t0.Add(time.Minute)) {
			t.Errorf("delta %v: accepted %d, watermark %s; want a, c and d, and c's time", delta, second.Accepted, second.Watermark)
		}
		if (!delta && len(second.Data.Users) != 3) || (delta && second.Delta.Len() != 3) {
			t.Errorf("delta %v: the data does not hold a, c and d", delta)
		}
	}
}
