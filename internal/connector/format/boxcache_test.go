package format

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestBoxCache(t *testing.T) {
	var c boxCache
	if _, ok := c.get([]byte("admin"), false); ok {
		t.Fatal("hit in an empty cache")
	}
	var admin any = "admin"
	c.put("admin", admin)
	c.put("1", json.Number("1"))
	if v, ok := c.get([]byte("admin"), false); !ok || v != admin {
		t.Errorf("get(admin) = %v, %v", v, ok)
	}
	if v, ok := c.getString("admin"); !ok || v != admin {
		t.Errorf("getString(admin) = %v, %v", v, ok)
	}
	// The same text as the other type is a miss, never a wrong type.
	if v, ok := c.get([]byte("admin"), true); ok {
		t.Errorf("get(admin, number) = %#v", v)
	}
	if v, ok := c.getString("1"); ok {
		t.Errorf("getString(1) = %#v", v)
	}
	if v, ok := c.get([]byte("1"), true); !ok || v != any(json.Number("1")) {
		t.Errorf("get(1, number) = %#v, %v", v, ok)
	}
	long := strings.Repeat("x", cacheMaxLen+1)
	c.put(long, long)
	if _, ok := c.getString(long); ok {
		t.Error("long values are cached")
	}

	// A column of distinct values switches its cache off.
	var ids boxCache
	for i := range 2 * cacheProbe {
		s := fmt.Sprint(i)
		if _, ok := ids.getString(s); !ok {
			ids.put(s, s)
		}
	}
	if !ids.off || ids.m != nil {
		t.Errorf("cache of distinct values still on with %d entries", len(ids.m))
	}

	// Columns past cacheColumns have none, and a nil cache is a no-op.
	var cs columnCaches
	if cs.at(cacheColumns) != nil || cs.at(3) == nil || len(cs) != 4 {
		t.Errorf("columnCaches: %d", len(cs))
	}
	var none *boxCache
	none.put("a", "a")
	if _, ok := none.getString("a"); ok {
		t.Error("nil cache hit")
	}
}
