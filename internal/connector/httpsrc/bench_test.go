package httpsrc

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/format"
)

// One page of 100 k records (10 MB), read as the whole document (before) and
// streamed (now):
//
//	go test ./internal/connector/httpsrc -run '^$' -bench Page -benchmem -cpu 1 -count 3
const benchRecords = 100_000

func benchBody(b *testing.B) []byte {
	body, err := io.ReadAll(&generated{n: benchRecords})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func BenchmarkPageWholeDocument(b *testing.B) {
	body := benchBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		data, err := io.ReadAll(bytes.NewReader(body)) // the body, read whole
		if err != nil {
			b.Fatal(err)
		}
		doc, err := format.ParseJSON(data)
		if err != nil {
			b.Fatal(err)
		}
		n, err := format.VisitJSONRecords(context.Background(), doc, "data", 0, func(connector.Record, *connector.RecordError) error { return nil })
		if err != nil || n != benchRecords {
			b.Fatal(n, err)
		}
		format.Lookup(doc, "next")
	}
	b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkPageStreamed(b *testing.B) {
	body := benchBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := streamPage(context.Background(), bytes.NewReader(body), "data", []string{"next"}, 0,
			func(connector.Record, *connector.RecordError) error { return nil })
		if err != nil || res.records != benchRecords {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
