package main

import (
	"os"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	var xs []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		xs = append(xs, time.Duration(i)*time.Second)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Second}, {0.99, 99 * time.Second}, {1, 100 * time.Second}, {0.001, time.Second}} {
		if got := quantile(xs, c.q); got != c.want {
			t.Errorf("quantile(1..100 s, %v) = %v, want %v", c.q, got, c.want)
		}
	}
	if xs[0] != 100*time.Second {
		t.Error("quantile sorted its input")
	}
	if got := quantile([]int64{7}, 0.99); got != 7 {
		t.Errorf("quantile of one = %d", got)
	}
	if got := quantile([]int64(nil), 0.5); got != 0 {
		t.Errorf("quantile of none = %d", got)
	}
}

func TestSetDiff(t *testing.T) {
	set := func(ids ...string) map[string]struct{} {
		m := map[string]struct{}{}
		for _, id := range ids {
			m[id] = struct{}{}
		}
		return m
	}
	if m, e := setDiff(set("a", "b", "x"), set("a", "b", "c", "d")); m != 2 || e != 1 {
		t.Errorf("setDiff = %d missing, %d extra; want 2, 1", m, e)
	}
}

func TestProcStatusOfSelf(t *testing.T) {
	rss, hwm, err := procStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss < 1<<20 || hwm < rss {
		t.Errorf("rss %d, hwm %d: want rss >= 1 MiB and hwm >= rss", rss, hwm)
	}
	if cpu, err := cpuSeconds(os.Getpid()); err != nil || cpu < 0 {
		t.Errorf("cpuSeconds = %v, %v", cpu, err)
	}
	if _, err := parseKB(" 12 MB"); err == nil {
		t.Error("parseKB accepted MB")
	}
	if _, _, err := procStatus(-1); err == nil {
		t.Error("procStatus(-1) succeeded")
	}
}
