package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// quantile is the nearest-rank q-quantile (0 < q <= 1) of xs; xs need not be
// sorted and is not modified.
func quantile[T int64 | time.Duration](xs []T, q float64) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// latencySummary is "n=100 p50=… p90=… p99=… max=…".
func latencySummary(xs []time.Duration) string {
	if len(xs) == 0 {
		return "n=0"
	}
	r := func(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
	return fmt.Sprintf("n=%d min=%s p50=%s p90=%s p99=%s max=%s", len(xs), r(slices.Min(xs)),
		r(quantile(xs, 0.5)), r(quantile(xs, 0.9)), r(quantile(xs, 0.99)), r(slices.Max(xs)))
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// setDiff counts the members of got missing from want and the extra ones.
func setDiff(got, want map[string]struct{}) (missing, extra int) {
	for id := range want {
		if _, ok := got[id]; !ok {
			missing++
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra++
		}
	}
	return missing, extra
}
