package format

import "encoding/json"

// boxCache reuses the boxed `any` of short values that repeat within one column
// (roles, plans, countries, flags, small counts). A string or number stored in
// an `any` costs two allocations (its bytes and the box); a cache hit costs
// none, and repeated values then share memory in the caller's store. A column
// whose values mostly differ (ids, emails, timestamps) switches its cache off
// after cacheProbe lookups, so it pays one failed lookup per value only for the
// first records.
//
// Correctness does not depend on the cache: a hit yields a value equal to what
// decoding would have produced (same bytes, same Go type).
type boxCache struct {
	m       map[string]any
	lookups int
	hits    int
	off     bool
}

const (
	cacheMaxLen     = 24   // longer values rarely repeat (and hash slower)
	cacheMaxEntries = 256  // per column
	cacheProbe      = 1024 // lookups between hit-rate checks
	cacheColumns    = 256  // columns beyond are not cached, bounding memory
)

// get returns the cached box for b: a string, or a json.Number if num.
func (c *boxCache) get(b []byte, num bool) (any, bool) {
	if !c.ready(len(b)) {
		return nil, false
	}
	v, ok := c.m[string(b)]
	return c.hit(v, ok && isNumber(v) == num)
}

// getString is get for a string the caller already has.
func (c *boxCache) getString(s string) (any, bool) {
	if !c.ready(len(s)) {
		return nil, false
	}
	v, ok := c.m[s]
	return c.hit(v, ok && !isNumber(v))
}

// ready counts a lookup of an n-byte value and reports whether to look it up.
func (c *boxCache) ready(n int) bool {
	if c == nil || c.off || n > cacheMaxLen {
		return false
	}
	if c.lookups++; c.lookups >= cacheProbe {
		if c.hits < c.lookups/2 {
			c.off, c.m = true, nil
			return false
		}
		c.lookups, c.hits = 0, 0
	}
	return true
}

func (c *boxCache) hit(v any, ok bool) (any, bool) {
	if ok {
		c.hits++
	}
	return v, ok
}

// put remembers v (a string or json.Number whose text is s) while there is room.
func (c *boxCache) put(s string, v any) {
	if c == nil || c.off || len(s) > cacheMaxLen || len(c.m) >= cacheMaxEntries {
		return
	}
	if c.m == nil {
		c.m = make(map[string]any)
	}
	if _, taken := c.m[s]; !taken { // keep the first type seen for this text
		c.m[s] = v
	}
}

func isNumber(v any) bool {
	_, ok := v.(json.Number)
	return ok
}

// columnCaches holds one boxCache per column, created as columns show up.
type columnCaches []boxCache

// at returns the cache of column i, or nil (no caching, which the boxCache
// methods accept) for columns past cacheColumns.
func (cs *columnCaches) at(i int) *boxCache {
	if i >= cacheColumns {
		return nil
	}
	for len(*cs) <= i {
		*cs = append(*cs, boxCache{})
	}
	return &(*cs)[i]
}
