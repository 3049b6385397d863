package format

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/internal/connector"
)

const benchRecords = 100_000

// benchUser is one generated user with 15 realistic fields.
func benchUser(i int) []any {
	roles := []string{"admin", "member", "viewer", "owner"}
	plans := []string{"free", "team", "business", "enterprise"}
	created := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 37 * time.Minute)
	return []any{
		int64(1_000_000 + i),
		fmt.Sprintf("usr_%08x", i*2654435761%(1<<32)),
		fmt.Sprintf("user.%d@example%d.com", i, i%97),
		fmt.Sprintf("First%d", i%1000),
		fmt.Sprintf("Last%d", i%5000),
		roles[i%len(roles)],
		plans[i%len(plans)],
		int64(1 + i%250),
		float64(i%100000) / 7,
		i%3 != 0,
		i%5 == 0,
		created.Format(time.RFC3339),
		created.Add(time.Duration(i%1000) * time.Hour).Format(time.RFC3339),
		[]any{"beta", "eu"}[:1+i%2],
		float64(i%1000) / 1000,
	}
}

var benchFields = []string{"id", "user_id", "email", "first_name", "last_name", "role", "plan",
	"seats", "mrr", "active", "verified", "created_at", "last_seen_at", "tags", "score"}

var benchData = sync.OnceValues(func() (csvData, ndjsonData []byte) {
	var cb, nb bytes.Buffer
	cw := csv.NewWriter(&cb)
	_ = cw.Write(benchFields)
	row := make([]string, len(benchFields))
	obj := make(map[string]any, len(benchFields))
	for i := range benchRecords {
		u := benchUser(i)
		for j, v := range u {
			obj[benchFields[j]] = v
			row[j] = cell(v)
		}
		_ = cw.Write(row)
		b, _ := json.Marshal(obj)
		nb.Write(b)
		nb.WriteByte('\n')
	}
	cw.Flush()
	return cb.Bytes(), nb.Bytes()
})

func cell(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}

func benchRead(b *testing.B, data []byte, read func(context.Context, *bytes.Reader, connector.Visitor) error) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var n int64
	visit := func(rec connector.Record, recErr *connector.RecordError) error {
		if recErr != nil {
			return recErr
		}
		n++
		return nil
	}
	for b.Loop() {
		if err := read(b.Context(), bytes.NewReader(data), visit); err != nil {
			b.Fatal(err)
		}
	}
	if n != int64(b.N)*benchRecords {
		b.Fatalf("read %d records, want %d", n, int64(b.N)*benchRecords)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// Run: go test ./internal/connector/format -run '^$' -bench . -benchtime 5x -cpu 1
func BenchmarkReadCSV(b *testing.B) {
	data, _ := benchData()
	benchRead(b, data, func(ctx context.Context, r *bytes.Reader, v connector.Visitor) error {
		return ReadCSV(ctx, r, v)
	})
}

func BenchmarkReadNDJSON(b *testing.B) {
	_, data := benchData()
	benchRead(b, data, func(ctx context.Context, r *bytes.Reader, v connector.Visitor) error {
		return ReadNDJSON(ctx, r, v)
	})
}

// BenchmarkStdlibNDJSON is the baseline the hand-written decoder is measured against.
func BenchmarkStdlibNDJSON(b *testing.B) {
	_, data := benchData()
	benchRead(b, data, func(ctx context.Context, r *bytes.Reader, v connector.Visitor) error {
		dec := json.NewDecoder(r)
		dec.UseNumber()
		for num := int64(1); ; num++ {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				return nil
			}
			if err := v(objectRecord(num, m), nil); err != nil {
				return err
			}
		}
	})
}
