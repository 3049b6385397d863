package ingest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkIngestBatch: batches of 100 track calls over HTTP from 4
// concurrent clients, through parsing, the committed write and the 200, with
// the re-computation loop applying the users' deltas, on a real PostgreSQL on
// this machine. events/s is the sustained ingest rate; pg-µs/event and
// go-µs/event are the CPU time PostgreSQL and this process (endpoint and
// benchmark clients) spend per event, which the machine's other load moves
// far less than the rate. POSTGRES_DURABLE=1 runs PostgreSQL with its durable
// defaults (fsync and synchronous_commit on), as in production.
//
//	go test ./internal/ingest/ -run '^$' -bench IngestBatch -benchtime 600x
func BenchmarkIngestBatch(b *testing.B) {
	e := start(b)
	const perBatch, users = 100, 2000
	var seq atomic.Int64
	body := func() string { return loginBatch(&seq, perBatch, users, "m", true) }
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.ResetTimer()
	cpu := srv.MeasureCPU(b)
	start := time.Now()
	// 4 clients by default (b.SetParallelism(2) on 2 cores); BENCH_PARALLELISM
	// raises it, e.g. to 8 for 16 clients.
	par := 2
	if v, err := strconv.Atoi(os.Getenv("BENCH_PARALLELISM")); err == nil && v > 0 {
		par = v
	}
	b.SetParallelism(par)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := postBatch(client, e.url, body()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*perBatch)/time.Since(start).Seconds(), "events/s")
	cpu.Report(b, b.N*perBatch, "event")
}

// BenchmarkSustainedIngest: BENCH_SECONDS (default 30) of batches of 100
// track calls over HTTP from BENCH_CLIENTS (default 16) clients, each
// waiting for its answer before sending the next, through parsing, the
// committed write, the 200 and the re-computation loop applying the users'
// deltas (20,000 users, a 14-day windowed count), on a real PostgreSQL on
// this machine. events/s counts acknowledged events over the whole run;
// drain-ms is how long after the last answer the loop had applied every
// user; the log line says whether PostgreSQL ran durable (make bench-events
// sets POSTGRES_DURABLE=1). b.N is not used: the run lasts BENCH_SECONDS.
//
//	POSTGRES_DURABLE=1 go test ./internal/ingest/ -run '^$' -bench SustainedIngest -benchtime 1x
func BenchmarkSustainedIngest(b *testing.B) {
	e := start(b)
	seconds, clients := envInt("BENCH_SECONDS", 30), envInt("BENCH_CLIENTS", 16)
	const perBatch, users = 100, 20000
	durable := e.setting(b, "synchronous_commit") + "/" + e.setting(b, "fsync")
	load := LoadAverage()
	var seq atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	b.ResetTimer()
	cpu := srv.MeasureCPU(b)
	start := time.Now()
	deadline := start.Add(time.Duration(seconds) * time.Second)
	var acked atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				sent := time.Now()
				if err := postBatch(client, e.url, loginBatch(&seq, perBatch, users, "s", false)); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(sent))
				acked.Add(perBatch)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for len(e.svc.namespacesWithWork()) > 0 || e.get("team-a", fmt.Sprint("u", (seq.Load()-1)%users), "logins") == "" {
		time.Sleep(5 * time.Millisecond)
	}
	drain := time.Since(start) - elapsed
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	rate := float64(acked.Load()) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms/batch")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms/batch")
	b.ReportMetric(float64(drain.Milliseconds()), "drain-ms")
	cpu.Report(b, int(acked.Load()), "event")
	b.Logf("sustained ingest: %d events acknowledged in %s by %d clients = %.0f events/s; PostgreSQL synchronous_commit/fsync %s; load average %s → %s",
		acked.Load(), elapsed.Round(time.Millisecond), clients, rate, durable, load, LoadAverage())
}

// loginBatch is a /v1/batch body of n login track calls, numbered from seq,
// spread over users users, with a numeric property n or none.
func loginBatch(seq *atomic.Int64, n, users int, prefix string, props bool) string {
	var sb strings.Builder
	sb.WriteString(`{"batch":[`)
	for i := range n {
		m := seq.Add(1)
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"type":"track","messageId":"%s%d","userId":"u%d","event":"login"`, prefix, m, m%int64(users))
		if props {
			fmt.Fprintf(&sb, `,"properties":{"n":%d}`, m)
		}
		sb.WriteByte('}')
	}
	sb.WriteString(`]}`)
	return sb.String()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// setting is a PostgreSQL setting of the benchmark's server.
func (e *env) setting(b *testing.B, name string) string {
	var v string
	if err := e.events.Setting(context.Background(), name, &v); err != nil {
		b.Fatal(err)
	}
	return v
}

// LoadAverage is the machine's 1-minute load average (the machine is
// shared), which the benchmarks print beside their figures.
func LoadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(raw))[0]
}

// postBatch sends one /v1/batch call with write key wk-a; an error for a
// failed request or an answer other than 200.
func postBatch(client *http.Client, url, body string) error {
	req, err := http.NewRequest(http.MethodPost, url+"/v1/batch", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth("wk-a", "")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
