package inline

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/usersuccess/persona-operator/internal/connector"
)

func TestFetch(t *testing.T) {
	cases := []struct {
		format, data string
		want         []map[string]any
		rejected     []int64
		config       string
	}{
		{format: CSV, data: "id,email\n1,a@example.com\n2\n3,c@example.com\n",
			want:     []map[string]any{{"id": "1", "email": "a@example.com"}, {"id": "3", "email": "c@example.com"}},
			rejected: []int64{2}},
		{format: NDJSON, data: "{\"id\":1}\nnope\n{\"id\":3}\n",
			want:     []map[string]any{{"id": json.Number("1")}, {"id": json.Number("3")}},
			rejected: []int64{2}},
		{format: JSON, data: `[{"id":1},2,{"id":"x"}]`,
			want:     []map[string]any{{"id": json.Number("1")}, {"id": "x"}},
			rejected: []int64{2}},
		{format: JSON, data: `[{"id":1},`, config: "InvalidFormat"},
		{format: JSON, data: `{"id":1}`, config: "InvalidRecordsPath"},
		{format: CSV, data: "", config: "InvalidFormat"},
		{format: "XML", data: "<a/>", config: "InvalidFormat"},
		{format: "csv", data: "a\n1\n", config: "InvalidFormat"},
	}
	for _, tc := range cases {
		t.Run(tc.format+" "+tc.data, func(t *testing.T) {
			var got []map[string]any
			var rejected []int64
			err := New(tc.format, []byte(tc.data)).Fetch(t.Context(), func(rec connector.Record, recErr *connector.RecordError) error {
				if recErr != nil {
					rejected = append(rejected, recErr.Num)
				} else {
					got = append(got, rec.Map())
				}
				return nil
			})
			if tc.config != "" {
				if connector.ConfigReason(err) != tc.config {
					t.Fatalf("err = %v, want ConfigError %s", err, tc.config)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(rejected, tc.rejected) {
				t.Errorf("err = %v, records %v, rejected %v; want %v, %v", err, got, rejected, tc.want, tc.rejected)
			}
		})
	}
}

func TestFetchStops(t *testing.T) {
	stop := errors.New("stop")
	err := New(NDJSON, []byte("{}\n{}\n")).Fetch(t.Context(), func(connector.Record, *connector.RecordError) error { return stop })
	if err != stop {
		t.Errorf("err = %v, want the visitor's error", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = New(CSV, []byte("a\n1\n")).Fetch(ctx, func(connector.Record, *connector.RecordError) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
