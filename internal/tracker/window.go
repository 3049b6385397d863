package tracker

import (
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Window counts an owner's launches over a sliding window, for a rate limit
// such as maxLaunchesPerMinute. It lives in memory: after a restart the first
// window may launch up to one more window's worth.
type Window struct {
	// Span is the window's length; a minute when zero.
	Span time.Duration
	o    owned[[]mark]
}

type mark struct {
	at time.Time
	n  int
}

// Budget is how many launches limit still allows at now.
func (w *Window) Budget(owner Owner, limit int, now time.Time) int {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	return max(limit-w.used(owner, now), 0)
}

// used drops marks that left the window and sums the others. Callers hold mu.
func (w *Window) used(owner Owner, now time.Time) int {
	marks := w.o.get(owner, false, nil)
	if marks == nil {
		return 0
	}
	kept := (*marks)[:0]
	used := 0
	for _, m := range *marks {
		if now.Sub(m.at) < w.span() {
			kept = append(kept, m)
			used += m.n
		}
	}
	*marks = kept
	if len(kept) == 0 {
		delete(w.o.m, owner.NamespacedName)
	}
	return used
}

// Record counts n launches at now.
func (w *Window) Record(owner Owner, n int, now time.Time) {
	if n <= 0 {
		return
	}
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	marks := w.o.get(owner, true, func() []mark { return nil })
	*marks = append(*marks, mark{at: now, n: n})
}

// NextFree is when the oldest launch in the window leaves it (zero: none).
func (w *Window) NextFree(owner Owner) time.Time {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	marks := w.o.get(owner, false, nil)
	if marks == nil || len(*marks) == 0 {
		return time.Time{}
	}
	return (*marks)[0].at.Add(w.span())
}

func (w *Window) span() time.Duration {
	if w.Span <= 0 {
		return time.Minute
	}
	return w.Span
}

// Forget drops what is tracked for a deleted owner.
func (w *Window) Forget(name types.NamespacedName) { w.o.forget(name) }

// Len is how many owners have launches in the window.
func (w *Window) Len() int { return w.o.len() }
