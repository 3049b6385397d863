// Package profiletest builds profile store contents for tests the way a
// DataSource sync does: raw records mapped through a real attr.Mapper.
package profiletest

import (
	"sort"
	"testing"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// SourceData maps records (field name → raw value, fields in name order)
// through the spec's Mapper into one source's data, failing the test on a
// spec or record the mapper rejects.
func SourceData(t testing.TB, name string, spec v1alpha1.DataSourceSpec, records ...map[string]any) *profile.SourceData {
	t.Helper()
	return build(t, name, spec, fieldRecords(records))
}

// fieldRecords turns records given as maps into connector records, fields in
// name order.
func fieldRecords(records []map[string]any) []connector.Record {
	recs := make([]connector.Record, len(records))
	for i, r := range records {
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			recs[i].Fields = append(recs[i].Fields, k)
			recs[i].Values = append(recs[i].Values, r[k])
		}
	}
	return recs
}

// Rows is SourceData for records given as a table: one header (fields) and
// rows of raw values in its order, as a CSV source reads them.
func Rows(t testing.TB, name string, spec v1alpha1.DataSourceSpec, fields []string, rows ...[]any) *profile.SourceData {
	t.Helper()
	recs := make([]connector.Record, len(rows))
	for i, r := range rows {
		recs[i] = connector.Record{Fields: fields, Values: r}
	}
	return build(t, name, spec, recs)
}

// Resync is SourceData for a full re-sync of a source whose data the store
// holds (prev): unchanged rows, and the values' dictionaries, are reused as
// the DataSource controller's syncs do (profile.Builder.Reuse).
func Resync(t testing.TB, name string, spec v1alpha1.DataSourceSpec, prev *profile.SourceData, records ...map[string]any) *profile.SourceData {
	t.Helper()
	return buildReusing(t, name, spec, prev, fieldRecords(records))
}

func build(t testing.TB, name string, spec v1alpha1.DataSourceSpec, records []connector.Record) *profile.SourceData {
	t.Helper()
	return buildReusing(t, name, spec, nil, records)
}

func buildReusing(t testing.TB, name string, spec v1alpha1.DataSourceSpec, prev *profile.SourceData, records []connector.Record) *profile.SourceData {
	t.Helper()
	m, err := attr.NewMapper(&spec)
	if err != nil {
		t.Fatal(err)
	}
	b := profile.NewBuilder(name, 0, m, len(records))
	b.Reuse(prev)
	for i, rec := range records {
		rec.Num = int64(i + 1)
		mapped, err := m.Map(rec)
		if err != nil {
			t.Fatalf("%s record %d: %v", name, i+1, err)
		}
		b.Add(mapped)
	}
	return b.Finish()
}
