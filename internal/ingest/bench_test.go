package ingest

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
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
	body := func() string {
		var sb strings.Builder
		sb.WriteString(`{"batch":[`)
		for i := range perBatch {
			n := seq.Add(1)
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"type":"track","messageId":"m%d","userId":"u%d","event":"login","properties":{"n":%d}}`, n, n%users, n)
		}
		sb.WriteString(`]}`)
		return sb.String()
	}
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
			req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/batch", strings.NewReader(body()))
			req.SetBasicAuth("wk-a", "")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*perBatch)/time.Since(start).Seconds(), "events/s")
	cpu.Report(b, b.N*perBatch, "event")
}
