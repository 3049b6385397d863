package tracker

import (
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

var (
	p1      = Owner{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "p1"}, UID: "uid-1"}
	p1Again = Owner{NamespacedName: p1.NamespacedName, UID: "uid-2"} // deleted and re-created
	p2      = Owner{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "p2"}, UID: "uid-3"}
)

func TestWrites(t *testing.T) {
	for _, tc := range []struct {
		name      string
		write     map[string]int64 // name → generation written (Deleted for a delete)
		cached    map[string]int64
		wantStale bool
	}{
		{"nothing written", nil, map[string]int64{"a": 1}, false},
		{"create not cached", map[string]int64{"a": 1}, map[string]int64{}, true},
		{"create cached", map[string]int64{"a": 1}, map[string]int64{"a": 1}, false},
		{"update not cached", map[string]int64{"a": 3}, map[string]int64{"a": 2}, true},
		{"update cached, cache newer", map[string]int64{"a": 3}, map[string]int64{"a": 4}, false},
		{"delete still cached", map[string]int64{"a": Deleted}, map[string]int64{"a": 2}, true},
		{"delete cached", map[string]int64{"a": Deleted}, map[string]int64{}, false},
		{"one of two behind", map[string]int64{"a": 1, "b": 2}, map[string]int64{"a": 1, "b": 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w Writes
			for name, gen := range tc.write {
				w.Wrote(p1, name, gen)
			}
			if got := w.Stale(p1, tc.cached); got != tc.wantStale {
				t.Fatalf("Stale = %v, want %v", got, tc.wantStale)
			}
			if w.Stale(p2, tc.cached) {
				t.Fatal("another owner is stale")
			}
			w.Settle(p1, tc.cached)
			if w.Stale(p1, tc.cached) != tc.wantStale {
				t.Fatal("Settle changed the verdict for the same cache")
			}
			if !tc.wantStale && w.Len() != 0 {
				t.Fatalf("Settle kept %d owners whose writes are all cached", w.Len())
			}
		})
	}
}

func TestWritesSettleKeepsWhatIsInFlight(t *testing.T) {
	var w Writes
	w.Wrote(p1, "a", 1)
	w.Wrote(p1, "b", 2)
	w.Settle(p1, map[string]int64{"a": 1})
	if !w.Stale(p1, map[string]int64{"a": 1}) {
		t.Fatal("b's write was forgotten before the cache showed it")
	}
	w.Settle(p1, map[string]int64{"a": 1, "b": 2})
	if w.Len() != 0 {
		t.Fatal("settled writes kept")
	}
}

func TestWritesForgetAndRecreate(t *testing.T) {
	var w Writes
	w.Wrote(p1, "a", 1)
	w.Wrote(p2, "b", 1)
	if !w.Stale(p1, nil) {
		t.Fatal("not stale")
	}
	// A persona re-created under the same name does not wait for the old one's writes.
	if w.Stale(p1Again, nil) {
		t.Fatal("a re-created owner inherited the old owner's writes")
	}
	w.Forget(p2.NamespacedName)
	if w.Stale(p2, nil) || w.Len() != 1 {
		t.Fatalf("Forget kept the owner (len %d)", w.Len())
	}
	w.Forget(p1.NamespacedName)
	if w.Len() != 0 {
		t.Fatal("Forget kept the owner")
	}
}

func TestWritesConcurrent(t *testing.T) {
	var w Writes
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := Owner{NamespacedName: types.NamespacedName{Namespace: "ns", Name: string(rune('a' + i))}, UID: "u"}
			for g := range 100 {
				w.Wrote(o, "s", int64(g))
				w.Stale(o, map[string]int64{"s": int64(g)})
				w.Settle(o, map[string]int64{"s": int64(g)})
			}
		}()
	}
	wg.Wait()
	if w.Len() != 0 {
		t.Fatalf("%d owners left after every write settled", w.Len())
	}
}

func TestNames(t *testing.T) {
	var n Names
	n.Add(p1, "job-a")
	n.Add(p1, "job-b")
	cached := map[string]bool{"job-a": true}
	got := n.Pending(p1, func(name string) bool { return cached[name] })
	if len(got) != 1 || !got["job-b"] {
		t.Fatalf("Pending = %v, want job-b only", got)
	}
	if got := n.Pending(p1Again, func(string) bool { return false }); len(got) != 0 {
		t.Fatalf("a re-created owner sees %v", got)
	}
	cached["job-b"] = true
	n.Add(p2, "job-c")
	if got := n.Pending(p1, func(name string) bool { return cached[name] }); len(got) != 0 || n.Len() != 1 {
		t.Fatalf("Pending = %v, owners %d: cached names kept", got, n.Len())
	}
	n.Forget(p2.NamespacedName)
	if n.Len() != 0 {
		t.Fatal("Forget kept the owner")
	}
}

func TestWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var w Window // a minute
	if got := w.Budget(p1, 10, t0); got != 10 {
		t.Fatalf("empty window budget = %d", got)
	}
	w.Record(p1, 4, t0)
	w.Record(p1, 0, t0) // no launch, no mark
	w.Record(p1, 5, t0.Add(30*time.Second))
	w.Record(p2, 7, t0)
	for _, tc := range []struct {
		at   time.Duration
		want int
	}{
		{10 * time.Second, 1},
		{59 * time.Second, 1},
		{60 * time.Second, 5}, // the first mark left the window
		{90 * time.Second, 10},
	} {
		if got := w.Budget(p1, 10, t0.Add(tc.at)); got != tc.want {
			t.Fatalf("budget at +%s = %d, want %d", tc.at, got, tc.want)
		}
	}
	if got := w.Budget(p2, 3, t0.Add(time.Second)); got != 0 {
		t.Fatalf("over-used budget = %d, want 0", got)
	}
	if w.Len() != 1 {
		t.Fatalf("owners %d: an owner whose marks all left the window is kept", w.Len())
	}
	if got := w.NextFree(p2); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("NextFree = %s", got)
	}
	if !w.NextFree(p1).IsZero() {
		t.Fatal("NextFree of an empty window")
	}
	w.Forget(p2.NamespacedName)
	if w.Len() != 0 || w.Budget(p2, 3, t0) != 3 {
		t.Fatal("Forget kept the owner's launches")
	}
}

func TestMemo(t *testing.T) {
	var m Memo[string]
	if _, ok := m.Get(p1, 1, "s1"); ok {
		t.Fatal("empty memo has a value")
	}
	m.Put(p1, 1, "s1", "compiled-1")
	if v, ok := m.Get(p1, 1, "s1"); !ok || v != "compiled-1" {
		t.Fatalf("Get = %q %v", v, ok)
	}
	for _, miss := range []struct {
		o   Owner
		gen int64
		key string
	}{{p1, 2, "s1"}, {p1, 1, "s2"}, {p1Again, 1, "s1"}, {p2, 1, "s1"}} {
		if _, ok := m.Get(miss.o, miss.gen, miss.key); ok {
			t.Fatalf("Get(%v, %d, %s) hit", miss.o, miss.gen, miss.key)
		}
	}
	if v, ok := m.Latest(p1, 1); !ok || v != "compiled-1" {
		t.Fatal("Latest misses the value of this generation")
	}
	if _, ok := m.Latest(p1, 2); ok {
		t.Fatal("Latest hits another generation")
	}
	m.Put(p1, 2, "s1", "compiled-2")
	m.Put(p2, 1, "s1", "other")
	if m.Len() != 2 {
		t.Fatalf("len %d: a new generation did not replace the old", m.Len())
	}
	m.Forget(p1.NamespacedName)
	m.Forget(p2.NamespacedName)
	if m.Len() != 0 {
		t.Fatal("Forget kept values")
	}
}
