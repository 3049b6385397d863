package breaker

import (
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	tests := []struct {
		name       string
		in         Input
		wantApply  bool
		wantReason string
	}{
		{"first sync", Input{Baseline: 0, Records: 10, MaxShrinkPercent: 50}, true, ""},
		{"first sync empty", Input{Baseline: 0, Records: 0, MaxShrinkPercent: 50}, false, ReasonEmptyResult},
		{"empty after data", Input{Baseline: 1000, Records: 0, MaxShrinkPercent: 100}, false, ReasonEmptyResult},
		{"empty forced", Input{Baseline: 1000, Records: 0, MaxShrinkPercent: 50, Forced: true}, true, ""},
		{"growth", Input{Baseline: 100, Records: 500, MaxShrinkPercent: 0}, true, ""},
		{"same size with zero tolerance", Input{Baseline: 100, Records: 100, MaxShrinkPercent: 0}, true, ""},
		{"any shrink with zero tolerance", Input{Baseline: 100, Records: 99, MaxShrinkPercent: 0}, false, ReasonSuspiciousShrink},
		{"shrink exactly at the limit", Input{Baseline: 100, Records: 50, MaxShrinkPercent: 50}, true, ""},
		{"shrink just over the limit", Input{Baseline: 1000, Records: 499, MaxShrinkPercent: 50}, false, ReasonSuspiciousShrink},
		{"shrink check disabled", Input{Baseline: 1000, Records: 1, MaxShrinkPercent: 100}, true, ""},
		{"shrink forced", Input{Baseline: 1000, Records: 1, MaxShrinkPercent: 50, Forced: true}, true, ""},
		{"huge counts do not overflow", Input{Baseline: 1 << 40, Records: 1 << 39, MaxShrinkPercent: 49}, false, ReasonSuspiciousShrink},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.in)
			if d.Apply != tt.wantApply || d.Reason != tt.wantReason {
				t.Fatalf("Decide(%+v) = %+v, want apply=%v reason=%q", tt.in, d, tt.wantApply, tt.wantReason)
			}
			if !d.Apply && !strings.Contains(d.Message, "force-apply") {
				t.Fatalf("a held-back result must say how to accept it: %q", d.Message)
			}
		})
	}
}

func TestShrinkPercent(t *testing.T) {
	for _, tt := range []struct{ base, rec, want int64 }{{0, 5, 0}, {100, 100, 0}, {100, 150, 0}, {100, 40, 60}, {3, 2, 33}} {
		if got := ShrinkPercent(tt.base, tt.rec); got != tt.want {
			t.Errorf("ShrinkPercent(%d, %d) = %d, want %d", tt.base, tt.rec, got, tt.want)
		}
	}
}

// Properties: forcing always applies; growing never holds back; a result that is
// held back for shrinking really shrank by more than the limit.
func FuzzDecide(f *testing.F) {
	f.Add(int64(100), int64(40), int32(50), false)
	f.Add(int64(0), int64(0), int32(0), true)
	f.Fuzz(func(t *testing.T, base, rec int64, max int32, forced bool) {
		if base < 0 || rec < 0 || base > 1<<50 || rec > 1<<50 || max < 0 || max > 100 {
			return
		}
		d := Decide(Input{Baseline: base, Records: rec, MaxShrinkPercent: max, Forced: forced})
		switch {
		case forced && !d.Apply:
			t.Fatal("forced result held back")
		case rec > 0 && rec >= base && !d.Apply:
			t.Fatal("non-shrinking result held back")
		case d.Reason == ReasonSuspiciousShrink && (base-rec)*100 <= int64(max)*base:
			t.Fatalf("held back a shrink within the limit: %d → %d, max %d", base, rec, max)
		case rec == 0 && !forced && d.Apply:
			t.Fatal("applied an empty result")
		}
	})
}
