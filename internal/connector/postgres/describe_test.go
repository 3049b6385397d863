package postgres

import (
	"context"
	"reflect"
	"testing"
)

func TestDescribeNamesEachColumnsType(t *testing.T) {
	got, err := Describe(context.Background(), Config{DSN: readerDSN(), Query: "SELECT id, i8, f4, tstz, d, t, vc, u FROM typed"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"id": "text", "i8": "int8", "f4": "float4", "tstz": "timestamptz", "d": "date",
		"t": "text", "vc": "varchar", "u": "uuid"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Describe = %v, want %v", got, want)
	}
	if _, err := Describe(context.Background(), Config{DSN: readerDSN(), Query: "SELECT nope FROM typed"}); err == nil {
		t.Fatal("want an error for an unknown column")
	}
	if _, err := Describe(context.Background(), Config{DSN: readerDSN(), Query: "SELECT id, id FROM typed"}); err == nil {
		t.Fatal("want an error for a repeated column")
	}
}
