package datasource

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/breaker"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/inline"
	"github.com/usersuccess/persona-operator/internal/profile"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *metav1.Time { t := metav1.NewTime(t0.Add(d)); return &t }

func ds(mut func(*v1alpha1.DataSource)) *v1alpha1.DataSource {
	d := &v1alpha1.DataSource{
		ObjectMeta: metav1.ObjectMeta{Name: "crm", Generation: 2, CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour))},
		Spec:       v1alpha1.DataSourceSpec{Interval: &metav1.Duration{Duration: 5 * time.Minute}},
		Status: v1alpha1.DataSourceStatus{ObservedGeneration: 2, LastSyncTime: at(-time.Minute), LastSuccessfulSyncTime: at(-time.Minute),
			Conditions: []metav1.Condition{{Type: v1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSucceeded}}},
	}
	if mut != nil {
		mut(d)
	}
	return d
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name     string
		ds       *v1alpha1.DataSource
		loaded   bool
		refs     string
		wantDue  bool
		wantWhy  string
		wantNext time.Time
		forced   bool
	}{
		{name: "fresh and loaded: wait for the interval", ds: ds(nil), loaded: true, wantNext: t0.Add(4 * time.Minute)},
		{name: "interval elapsed", ds: ds(func(d *v1alpha1.DataSource) { d.Status.LastSyncTime = at(-6 * time.Minute) }), loaded: true, wantDue: true, wantWhy: "interval elapsed"},
		{name: "restart: store empty", ds: ds(nil), loaded: false, wantDue: true, wantWhy: "rebuilding the profile store"},
		{name: "restart while suspended still rebuilds", ds: ds(func(d *v1alpha1.DataSource) { d.Spec.Suspend = true }), wantDue: true, wantWhy: "rebuilding"},
		{name: "suspended", ds: ds(func(d *v1alpha1.DataSource) { d.Spec.Suspend = true; d.Generation = 3 }), loaded: true, wantWhy: "suspended"},
		{name: "spec changed", ds: ds(func(d *v1alpha1.DataSource) { d.Generation = 3 }), loaded: true, wantDue: true, wantWhy: "spec changed"},
		{name: "never synced", ds: ds(func(d *v1alpha1.DataSource) { d.Status = v1alpha1.DataSourceStatus{ObservedGeneration: 2} }), wantDue: true, wantWhy: "never synced"},
		{name: "reconcile requested", ds: ds(func(d *v1alpha1.DataSource) {
			d.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: "now"}
		}), loaded: true, wantDue: true, wantWhy: "reconcile requested"},
		{name: "reconcile request already handled", ds: ds(func(d *v1alpha1.DataSource) {
			d.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: "now"}
			d.Status.LastHandledReconcileAt = "now"
		}), loaded: true, wantNext: t0.Add(4 * time.Minute)},
		{name: "force apply", ds: ds(func(d *v1alpha1.DataSource) {
			d.Annotations = map[string]string{v1alpha1.ForceApplyAnnotation: "x"}
		}), loaded: true, wantDue: true, forced: true, wantWhy: "force-apply"},
		{name: "force apply already honoured", ds: ds(func(d *v1alpha1.DataSource) {
			d.Annotations = map[string]string{v1alpha1.ForceApplyAnnotation: "x"}
			d.Status.LastHandledForceApply = "x"
		}), loaded: true, wantNext: t0.Add(4 * time.Minute)},
		{name: "reference changed", ds: ds(nil), loaded: true, refs: "v2", wantDue: true, wantWhy: "referenced"},
		{name: "transient failure is retried", ds: ds(func(d *v1alpha1.DataSource) {
			d.Status.Conditions[0] = metav1.Condition{Type: v1alpha1.ReadyCondition, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonSourceDegraded}
		}), loaded: true, wantDue: true, wantWhy: "retrying"},
		{name: "held back results wait for the interval", ds: ds(func(d *v1alpha1.DataSource) {
			d.Status.Conditions[0] = metav1.Condition{Type: v1alpha1.ReadyCondition, Status: metav1.ConditionFalse, Reason: breaker.ReasonSuspiciousShrink}
		}), loaded: true, wantNext: t0.Add(4 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Plan(tt.ds, tt.loaded, tt.refs, t0)
			if got.Due != tt.wantDue || got.Forced != tt.forced || !strings.Contains(got.Why, tt.wantWhy) || !got.Next.Equal(tt.wantNext) {
				t.Fatalf("Plan = %+v, want due=%v forced=%v why~%q next=%v", got, tt.wantDue, tt.forced, tt.wantWhy, tt.wantNext)
			}
		})
	}
}

func TestStaleness(t *testing.T) {
	d := ds(func(d *v1alpha1.DataSource) { d.Spec.MaxStaleness = &metav1.Duration{Duration: 30 * time.Second} })
	if stale, _, when := Staleness(d, t0); !stale || !when.Equal(t0.Add(-30*time.Second)) {
		t.Fatalf("1m-old data with 30s maxStaleness: stale=%v at=%v", stale, when)
	}
	MarkStaleness(d, t0)
	if c := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.StaleCondition); c == nil || c.Reason != v1alpha1.ReasonDataStale {
		t.Fatalf("Stale condition = %+v", c)
	}
	d.Status.LastSuccessfulSyncTime = at(0)
	if stale, _, when := Staleness(d, t0); stale || !when.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("fresh data: stale=%v at=%v", stale, when)
	}
	MarkStaleness(d, t0)
	if meta.FindStatusCondition(d.Status.Conditions, v1alpha1.StaleCondition) != nil {
		t.Fatal("Stale condition not removed")
	}
	if stale, _, when := Staleness(ds(nil), t0); stale || !when.IsZero() {
		t.Fatal("no maxStaleness: never stale")
	}
}

func mapper(t *testing.T) *attr.Mapper {
	m, err := attr.NewMapper(&v1alpha1.DataSourceSpec{Attributes: []v1alpha1.AttributeMapping{{Name: "nps", Type: v1alpha1.TypeInt}}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type failing struct{ err error }

func (f failing) Fetch(context.Context, connector.Visitor) error { return f.err }

func TestRunAndRecord(t *testing.T) {
	clock := func() time.Time { return t0 }
	tests := []struct {
		name       string
		src        connector.Source
		baseline   int64
		maxRecords int64
		wantReady  string
		wantStall  string
		wantRecs   int64
		wantRej    int64
		wantApply  bool
		wantInMsgs string
	}{
		{name: "applied with rejections", src: inline.New("CSV", []byte("id,nps\nu1,1\nu2,x\nu3,3\n")), wantReady: "True/Succeeded",
			wantRecs: 2, wantRej: 1, wantApply: true, wantInMsgs: "applied 2 records (1 rejected)"},
		{name: "held back", src: inline.New("CSV", []byte("id,nps\nu1,1\n")), baseline: 10, wantReady: "False/SuspiciousShrink", wantRecs: 10},
		{name: "empty", src: inline.New("CSV", []byte("id,nps\n")), baseline: 10, wantReady: "False/EmptyResult", wantRecs: 10},
		{name: "transient failure keeps data", src: failing{errors.New("boom")}, baseline: 10, wantReady: "False/SourceDegraded", wantRecs: 10,
			wantInMsgs: "keeping the last good data (10 records"},
		{name: "config failure stalls", src: failing{connector.Configf("AuthenticationFailed", "401")}, baseline: 10,
			wantReady: "False/AuthenticationFailed", wantStall: "True/AuthenticationFailed", wantRecs: 10},
		{name: "at the record cap", src: inline.New("CSV", []byte("id,nps\nu1,1\nu2,x\nu3,3\n")), maxRecords: 3,
			wantReady: "True/Succeeded", wantRecs: 2, wantRej: 1, wantApply: true},
		{name: "over the record cap stalls and keeps the data", src: inline.New("CSV", []byte("id,nps\nu1,1\nu2,2\nu3,3\nu4,4\n")),
			baseline: 10, maxRecords: 3, wantReady: "False/LimitExceeded", wantStall: "True/LimitExceeded", wantRecs: 10,
			wantInMsgs: "more than 3 records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ds(func(d *v1alpha1.DataSource) { d.Status.RecordsAccepted = tt.baseline })
			out := Run(context.Background(), Request{Name: "crm", Source: tt.src, Mapper: mapper(t), Baseline: tt.baseline,
				MaxShrinkPercent: 50, Now: clock, MaxRecords: tt.maxRecords})
			applied := out.FetchErr == nil && out.Decision.Apply
			if applied != tt.wantApply {
				t.Fatalf("applied = %v, want %v (%+v)", applied, tt.wantApply, out)
			}
			Record(d, out, applied, t0)
			if s, ok := conditions.AsStalled(out.FetchErr); ok {
				// What the controller does with a Stalled error (and an Event).
				conditions.MarkStalled(&d.Status.Conditions, d.Generation, s, Keeping(&d.Status))
			}
			cond := func(typ string) string {
				c := meta.FindStatusCondition(d.Status.Conditions, typ)
				if c == nil {
					return ""
				}
				return string(c.Status) + "/" + c.Reason
			}
			if cond(v1alpha1.ReadyCondition) != tt.wantReady || cond(v1alpha1.StalledCondition) != tt.wantStall {
				t.Fatalf("Ready=%s Stalled=%s, want %s %s", cond(v1alpha1.ReadyCondition), cond(v1alpha1.StalledCondition), tt.wantReady, tt.wantStall)
			}
			if d.Status.RecordsAccepted != tt.wantRecs || (out.FetchErr == nil && d.Status.RecordsRejected != tt.wantRej) {
				t.Fatalf("accepted=%d rejected=%d", d.Status.RecordsAccepted, d.Status.RecordsRejected)
			}
			if msg := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.ReadyCondition).Message; !strings.Contains(msg, tt.wantInMsgs) {
				t.Fatalf("message %q lacks %q", msg, tt.wantInMsgs)
			}
			if applied && (d.Status.Digest == "" || !d.Status.LastSuccessfulSyncTime.Time.Equal(t0)) {
				t.Fatalf("applied sync without digest or success time: %+v", d.Status)
			}
			if !applied && d.Status.LastSuccessfulSyncTime.Time.Equal(t0) {
				t.Fatal("a sync that was not applied moved lastSuccessfulSyncTime")
			}
		})
	}
}

// endless yields records until the visitor fails, counting them.
type endless struct{ visited *int64 }

func (e endless) Fetch(ctx context.Context, visit connector.Visitor) error {
	for i := int64(1); ; i++ {
		*e.visited = i
		rec := connector.Record{Num: i, Fields: []string{"id", "nps"}, Values: []any{fmt.Sprint("u", i), "1"}}
		if err := visit(rec, nil); err != nil {
			return err
		}
	}
}

// A source with more records than the cluster allows is stopped as soon as it
// exceeds the cap, not read to the end.
func TestRecordCapStopsReading(t *testing.T) {
	var visited int64
	out := Run(context.Background(), Request{Name: "crm", Source: endless{&visited}, Mapper: mapper(t),
		Now: func() time.Time { return t0 }, MaxRecords: 1000})
	s, ok := conditions.AsStalled(out.FetchErr)
	if !ok || s.Reason != v1alpha1.ReasonLimitExceeded || out.Data != nil {
		t.Fatalf("FetchErr %v, data %v; want a LimitExceeded stall and no data", out.FetchErr, out.Data)
	}
	if visited != 1001 {
		t.Fatalf("read %d records, want 1001 (the cap and one more)", visited)
	}
}

func TestLimitsApply(t *testing.T) {
	hour := &metav1.Duration{Duration: time.Hour}
	tests := []struct {
		name        string
		limits      Limits
		spec        v1alpha1.DataSourceSpec
		wantTimeout time.Duration
		wantBytes   int64
		wantLowered int
	}{
		{"no limits", Limits{}, v1alpha1.DataSourceSpec{Timeout: hour, HTTP: &v1alpha1.HTTPSource{MaxResponseBytes: 1 << 30}}, time.Hour, 1 << 30, 0},
		{"under the caps", Limits{MaxSyncTimeout: 2 * time.Hour, MaxResponseBytes: 1 << 30},
			v1alpha1.DataSourceSpec{Timeout: hour, HTTP: &v1alpha1.HTTPSource{MaxResponseBytes: 1 << 20}}, time.Hour, 1 << 20, 0},
		{"over both caps", Limits{MaxSyncTimeout: 10 * time.Minute, MaxResponseBytes: 64 << 20},
			v1alpha1.DataSourceSpec{Timeout: hour, HTTP: &v1alpha1.HTTPSource{MaxResponseBytes: 1 << 30}}, 10 * time.Minute, 64 << 20, 2},
		{"defaults over the caps", Limits{MaxSyncTimeout: 30 * time.Second, MaxResponseBytes: 1 << 20},
			v1alpha1.DataSourceSpec{HTTP: &v1alpha1.HTTPSource{}}, 30 * time.Second, 1 << 20, 2},
		{"defaults under the caps stay defaults", Limits{MaxSyncTimeout: time.Hour, MaxResponseBytes: 1 << 30},
			v1alpha1.DataSourceSpec{HTTP: &v1alpha1.HTTPSource{}}, v1alpha1.DefaultTimeout, 0, 0},
		{"not HTTP", Limits{MaxResponseBytes: 1}, v1alpha1.DataSourceSpec{}, v1alpha1.DefaultTimeout, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			lowered := tt.limits.Apply(&spec)
			if len(lowered) != tt.wantLowered || spec.SyncTimeout() != tt.wantTimeout {
				t.Fatalf("lowered %v, timeout %s; want %d lowered, %s", lowered, spec.SyncTimeout(), tt.wantLowered, tt.wantTimeout)
			}
			if spec.HTTP != nil && spec.HTTP.MaxResponseBytes != tt.wantBytes {
				t.Fatalf("maxResponseBytes %d, want %d", spec.HTTP.MaxResponseBytes, tt.wantBytes)
			}
		})
	}
}

func TestRejectionReasonsAreBounded(t *testing.T) {
	long := strings.Repeat("é", 600) // 1200 bytes
	src := failingRecord{reason: long}
	out := Run(context.Background(), Request{Name: "crm", Source: src, Mapper: mapper(t), Now: func() time.Time { return t0 }})
	if len(out.Rejections) != 1 {
		t.Fatalf("rejections = %+v", out.Rejections)
	}
	got := out.Rejections[0].Reason
	if !utf8.ValidString(got) || len(got) > MaxRejectionBytes || !strings.HasSuffix(got, conditions.TruncatedMarker) {
		t.Fatalf("rejection reason of %d bytes: %q", len(got), got)
	}
}

type failingRecord struct{ reason string }

func (f failingRecord) Fetch(_ context.Context, visit connector.Visitor) error {
	return visit(connector.Record{}, &connector.RecordError{Num: 1, Reason: f.reason})
}

func TestRejected(t *testing.T) {
	pct := func(n int32) *int32 { return &n }
	first := []v1alpha1.RecordRejection{{Record: 2, Reason: `attribute "nps": not an int`}}
	for _, tc := range []struct {
		name               string
		limit              *int32
		accepted, rejected int64
		want               bool
		wantMsg            string
	}{
		{"none rejected", nil, 7, 0, false, ""},
		{"5 of 7, default 10%", nil, 2, 5, true,
			`5 of 7 records rejected (71.4%, more than maxRejectPercent 10%); first: record 2: attribute "nps": not an int`},
		{"exactly at the limit", nil, 9, 1, false, ""},
		{"just over the limit", nil, 89, 11, true, "11 of 100 records rejected (11%, more than maxRejectPercent 10%)"},
		{"zero tolerates none", pct(0), 999, 1, true, "1 of 1000 records rejected (0.1%, more than maxRejectPercent 0%)"},
		{"100 tolerates all", pct(100), 0, 5, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := &v1alpha1.DataSourceSpec{MaxRejectPercent: tc.limit}
			o := Outcome{Accepted: tc.accepted, Rejected: tc.rejected, Data: &profile.SourceData{}}
			if tc.rejected > 0 {
				o.Rejections = first
			}
			got, msg := Rejected(spec, o)
			if got != tc.want || !strings.HasPrefix(msg, tc.wantMsg) {
				t.Fatalf("Rejected = %v %q, want %v %q", got, msg, tc.want, tc.wantMsg)
			}
			d := ds(nil)
			d.Spec.MaxRejectPercent = tc.limit
			Record(d, o, true, t0)
			c := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.DegradedCondition)
			if tc.want != (c != nil && c.Status == metav1.ConditionTrue && c.Reason == v1alpha1.ReasonRecordsRejected && c.Message == msg) {
				t.Fatalf("Degraded = %+v, want rejected=%v", c, tc.want)
			}
			if ready := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.ReadyCondition); ready.Status != metav1.ConditionTrue {
				t.Fatalf("Ready = %+v: the accepted records applied", ready)
			}
		})
	}
}

func TestCheckUsers(t *testing.T) {
	tests := []struct {
		known, added, max int
		stalls            bool
	}{
		{known: 10, added: 5, max: 0},                // no cap
		{known: 10, added: 5, max: 15},               // exactly at the cap
		{known: 10, added: 6, max: 15, stalls: true}, // over it
		{known: 20, added: 0, max: 15},               // adds nobody: a namespace over a lowered cap still syncs
		{known: 0, added: 1_000_001, max: 1_000_000, stalls: true},
	}
	for _, tt := range tests {
		err := CheckUsers(tt.known, tt.added, tt.max)
		s, ok := conditions.AsStalled(err)
		if ok != tt.stalls || (err != nil) != tt.stalls {
			t.Errorf("CheckUsers(%d, %d, %d) = %v, want stalled %v", tt.known, tt.added, tt.max, err, tt.stalls)
			continue
		}
		if ok && (s.Reason != v1alpha1.ReasonLimitExceeded || !strings.Contains(s.Message, "--max-users-per-namespace")) {
			t.Errorf("CheckUsers stall %+v", s)
		}
	}
}
