package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/internal/tracking"
)

// BenchmarkWrite: committed transactions of 100 track calls each (one
// multi-row insert and the users' first/last seen), from 4 goroutines, on a
// real PostgreSQL on this machine.
//
//	go test ./internal/eventstore/ -run '^$' -bench Write -benchtime 300x
func BenchmarkWrite(b *testing.B) {
	s, _ := open(b)
	const perBatch, users = 100, 2000
	var seq atomic.Int64
	props := json.RawMessage(`{"n":1}`)
	b.SetParallelism(2)
	b.ResetTimer()
	cpu := srv.MeasureCPU(b)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		calls := make([]tracking.Call, perBatch)
		for pb.Next() {
			for i := range calls {
				n := seq.Add(1)
				calls[i] = tracking.Call{Type: tracking.Track, MessageID: fmt.Sprint("m", n), UserID: fmt.Sprint("u", n%users),
					Event: "login", Properties: props, Timestamp: t0}
			}
			if _, err := s.Write(context.Background(), "ns", calls, t0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*perBatch)/time.Since(start).Seconds(), "events/s")
	cpu.Report(b, b.N*perBatch, "event")
}
