package syncslots

import (
	"slices"
	"sync"
	"testing"
)

func TestPerNamespace(t *testing.T) {
	tests := []struct {
		name                      string
		configured, workers, want int
	}{
		{"default", 0, 4, DefaultPerNamespace},
		{"negative is the default", -3, 4, DefaultPerNamespace},
		{"configured", 3, 8, 3},
		{"one worker stays free", 4, 4, 3},
		{"above the workers", 10, 4, 3},
		{"two workers", 0, 2, 1},
		{"a single worker", 2, 1, 1},
		{"no workers configured", 0, 0, DefaultPerNamespace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PerNamespace(tt.configured, tt.workers); got != tt.want {
				t.Errorf("PerNamespace(%d, %d) = %d, want %d", tt.configured, tt.workers, got, tt.want)
			}
		})
	}
}

func TestSlots(t *testing.T) {
	s := New(2)
	steps := []struct {
		op, ns string
		want   bool // for acquire
		after  int  // Running(ns) after the step
	}{
		{"acquire", "a", true, 1},
		{"acquire", "a", true, 2},
		{"acquire", "a", false, 2}, // at the cap
		{"acquire", "b", true, 1},  // another namespace is not affected
		{"release", "a", false, 1},
		{"acquire", "a", true, 2},
		{"release", "a", false, 1},
		{"release", "a", false, 0},
		{"release", "a", false, 0}, // a stray release never goes negative
		{"acquire", "a", true, 1},
	}
	for i, st := range steps {
		switch st.op {
		case "acquire":
			if got := s.Acquire(st.ns); got != st.want {
				t.Fatalf("step %d: Acquire(%s) = %v, want %v", i, st.ns, got, st.want)
			}
		case "release":
			s.Release(st.ns)
		}
		if got := s.Running(st.ns); got != st.after {
			t.Fatalf("step %d: Running(%s) = %d, want %d", i, st.ns, got, st.after)
		}
	}
	s.Release("a")
	if len(s.running) != 1 { // b only: idle namespaces leave no entry
		t.Errorf("entries %v, want only b", s.running)
	}
}

func TestNilSlotsAdmitEverything(t *testing.T) {
	var s *Slots
	for range 3 {
		if !s.Acquire("a") {
			t.Fatal("a nil Slots refused a sync")
		}
	}
	s.Release("a")
	if s.Running("a") != 0 {
		t.Fatal("a nil Slots counts")
	}
}

func TestSlotsConcurrent(t *testing.T) {
	s := New(3)
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak, cur := 0, 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if !s.Acquire("a") {
					continue
				}
				mu.Lock()
				cur++
				peak = max(peak, cur)
				mu.Unlock()
				mu.Lock()
				cur--
				mu.Unlock()
				s.Release("a")
			}
		}()
	}
	wg.Wait()
	if peak > 3 || s.Running("a") != 0 {
		t.Errorf("peak %d (cap 3), running %d at the end", peak, s.Running("a"))
	}
}

// A name refused a slot is returned by the next Release in its namespace,
// once, so the caller wakes it instead of polling.
func TestWaitersWokenOnRelease(t *testing.T) {
	s := New(1)
	if !s.Acquire("a") {
		t.Fatal("the first sync of a was refused")
	}
	for _, name := range []string{"users", "accounts", "users"} {
		if s.Acquire("a") {
			t.Fatalf("%s was admitted over the limit", name)
		}
		s.Wait("a", name)
	}
	s.Wait("b", "other")
	if got := s.Release("a"); !slices.Equal(got, []string{"accounts", "users"}) {
		t.Fatalf("Release returned %v, want [accounts users]", got)
	}
	if !s.Acquire("a") {
		t.Fatal("the freed slot was not available")
	}
	if got := s.Release("a"); len(got) != 0 {
		t.Fatalf("the second Release returned %v: waiters are woken once", got)
	}
	if got := s.Release("b"); !slices.Equal(got, []string{"other"}) {
		t.Fatalf("namespace b's waiter: %v", got)
	}
	var nilSlots *Slots
	nilSlots.Wait("a", "x")
	if got := nilSlots.Release("a"); got != nil {
		t.Fatalf("nil Slots returned waiters %v", got)
	}
}
