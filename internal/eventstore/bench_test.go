package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
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

// BenchmarkRecompute: re-computing 2,000 of 20,000 users (10 events each),
// as the ingest loop does after a write: the full query over their events
// (Profiles) against their rows alone (Users; the aggregates come from the
// kept UserAggregates).
//
//	go test ./internal/eventstore/ -run '^$' -bench Recompute -benchtime 20x
func BenchmarkRecompute(b *testing.B) {
	s, _ := open(b)
	ctx := context.Background()
	const users, perUser, batch = 20000, 10, 2000
	props := json.RawMessage(`{"n":1}`)
	calls := make([]tracking.Call, 0, 5000)
	for i := range users * perUser {
		calls = append(calls, tracking.Call{Type: tracking.Track, MessageID: fmt.Sprint("m", i), UserID: fmt.Sprint("u", i%users),
			Event: "login", Properties: props, Timestamp: t0.Add(-time.Duration(i) * time.Second)})
		if len(calls) == cap(calls) {
			if _, err := s.Write(ctx, "ns", calls, t0); err != nil {
				b.Fatal(err)
			}
			calls = calls[:0]
		}
	}
	aggs, _ := Compile([]v1alpha1.EventAggregate{{Name: "logins", Function: v1alpha1.AggregateCount, Event: "login", Window: "14d"}})
	ids := make([]string, batch)
	for i := range ids {
		ids[i] = fmt.Sprint("u", i*7%users)
	}
	b.Run("Profiles", func(b *testing.B) {
		cpu := srv.MeasureCPU(b)
		for range b.N {
			if err := s.Profiles(ctx, "ns", aggs, ids, t0, func(*Profile) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
		cpu.Report(b, b.N*batch, "user")
	})
	b.Run("Users", func(b *testing.B) {
		cpu := srv.MeasureCPU(b)
		for range b.N {
			if err := s.Users(ctx, "ns", ids, func(*UserRow) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
		cpu.Report(b, b.N*batch, "user")
	})
}
