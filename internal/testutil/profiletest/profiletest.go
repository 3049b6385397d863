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
	m, err := attr.NewMapper(&spec)
	if err != nil {
		t.Fatal(err)
	}
	b := profile.NewBuilder(name, 0, m, len(records))
	for i, r := range records {
		rec := connector.Record{Num: int64(i + 1)}
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			rec.Fields = append(rec.Fields, k)
			rec.Values = append(rec.Values, r[k])
		}
		mapped, err := m.Map(rec)
		if err != nil {
			t.Fatalf("%s record %d: %v", name, i+1, err)
		}
		b.Add(mapped)
	}
	return b.Finish()
}
