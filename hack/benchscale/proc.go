package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procStatus reads the resident set (VmRSS) and its high-water mark (VmHWM) of
// a process, in bytes, from /proc/PID/status.
func procStatus(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		v, err := parseKB(rest)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			rss = v
		} else {
			hwm = v
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return rss, hwm, sc.Err()
}

// parseKB parses "   123456 kB" into bytes.
func parseKB(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("unexpected value %q", s)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	return n * 1024, err
}

// cpuSeconds is the process's user+system CPU time, from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count fields after its ")".
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return (utime + stime) / 100, nil // USER_HZ is 100 on Linux
}

type rssSample struct {
	at       time.Time
	rss, hwm int64
}

// sampler records the manager's RSS every period until stopped.
type sampler struct {
	pid int
	mu  sync.Mutex
	all []rssSample
	err error
}

func (s *sampler) run(stop <-chan struct{}, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		rss, hwm, err := procStatus(s.pid)
		s.mu.Lock()
		if err != nil {
			s.err = err
		} else {
			s.all = append(s.all, rssSample{time.Now(), rss, hwm})
		}
		s.mu.Unlock()
		if err != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// between returns the samples taken in [from, to].
func (s *sampler) between(from, to time.Time) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int64
	for _, x := range s.all {
		if !x.at.Before(from) && !x.at.After(to) {
			out = append(out, x.rss)
		}
	}
	return out
}

func (s *sampler) last() (rssSample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return rssSample{}, fmt.Errorf("no RSS sample (%w)", s.err)
	}
	return s.all[len(s.all)-1], s.err
}

func (s *sampler) writeCSV(path string, t0 time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	b.WriteString("seconds,rss_bytes,hwm_bytes\n")
	for _, x := range s.all {
		fmt.Fprintf(&b, "%.2f,%d,%d\n", x.at.Sub(t0).Seconds(), x.rss, x.hwm)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
