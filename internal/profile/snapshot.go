package profile

import (
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/attr"
)

// A snapshot is a dense, read-only copy of one view's profile index: every
// profile in a slice with its account resolved to an index once, and, built on
// demand, one column per attribute a rule reads. Evaluating a rule over a million
// profiles then walks slices instead of iterating a map, looking accounts up by id
// and chasing pointers to scattered rows.
//
// Snapshots are built lazily on the first read that needs one after the
// namespace changes and are cached until the next Apply or Remove (which hold
// the write lock, so no reader can see a stale snapshot).
type snapshot struct {
	users    []snapUser
	accounts []snapAccount
	// rowSlots are the source slots user attributes are read from; rows holds,
	// for user i, its row in each: rows[i*len(rowSlots)+k] (nil: none). Reading
	// a column from here never touches the user's map entry.
	rowSlots []int
	rows     []*attr.Row

	mu   sync.Mutex
	cols map[string]*column // "u." or "a." + attribute name
}

type snapUser struct {
	id   string
	acct int32 // index in accounts; -1: the user has no account id
}

type snapAccount struct {
	id string
	e  *entry // emptyEntry for an account known by id only
}

// viewCache is one source selection's plan and snapshot.
type viewCache struct {
	plan *plan
	mu   sync.Mutex
	snap *snapshot
}

// maxCachedViews bounds the source selections whose snapshots are kept per
// generation: personas normally read all of a namespace's sources.
const maxCachedViews = 8

// view returns the cached plan and (lazy) snapshot for a source selection.
// The caller holds n.mu for reading.
func (n *Namespace) view(sources []string) *viewCache {
	key := ""
	if len(sources) > 0 {
		s := append([]string(nil), sources...)
		sort.Strings(s)
		key = "\x00" + strings.Join(s, "\x00")
	}
	n.viewMu.Lock()
	defer n.viewMu.Unlock()
	if vc, ok := n.views[key]; ok {
		return vc
	}
	p := n.plan
	if key != "" {
		only := make(map[string]bool, len(sources))
		for _, s := range sources {
			only[s] = true
		}
		p = buildPlan(n.sources, only)
	}
	vc := &viewCache{plan: p}
	if len(n.views) >= maxCachedViews {
		clear(n.views)
	}
	n.views[key] = vc
	return vc
}

// invalidate drops every cached snapshot; the caller holds n.mu for writing.
func (n *Namespace) invalidate() {
	n.viewMu.Lock()
	clear(n.views)
	n.viewMu.Unlock()
}

// snapshot returns the view's snapshot, building it on first use.
func (vc *viewCache) snapshot(n *Namespace) *snapshot {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.snap == nil {
		vc.snap = buildSnapshot(n, vc.plan)
	}
	return vc.snap
}

func buildSnapshot(n *Namespace, p *plan) *snapshot {
	s := &snapshot{cols: map[string]*column{}, rowSlots: rowSlots(p)}
	k := len(s.rowSlots)
	// One pass over the map collects the profiles and their rows.
	users := make([]snapUser, 0, len(n.users))
	rows := make([]*attr.Row, 0, len(n.users)*k)
	keys := make([]addrKey, 0, len(n.users))
	for id, e := range n.users {
		var first *attr.Row
		for _, slot := range p.userSlots {
			if first = e.row(slot); first != nil {
				break
			}
		}
		if first == nil {
			continue // not a profile: signals alone
		}
		keys = append(keys, addrKey{addr: uintptr(unsafe.Pointer(first)), i: int32(len(users))})
		users = append(users, snapUser{id: id, acct: -1})
		for _, slot := range s.rowSlots {
			rows = append(rows, e.row(slot))
		}
	}
	// Order profiles as their rows lie in memory: a sync allocates rows, their
	// values and their strings in record order, so reading columns in this order
	// streams through memory instead of missing the cache on every profile. (Go's
	// heap does not move objects; the order only affects speed.)
	sortByAddr(keys)
	s.users = make([]snapUser, len(users))
	s.rows = make([]*attr.Row, len(rows))
	for i, key := range keys {
		j := int(key.i)
		s.users[i] = users[j]
		copy(s.rows[i*k:(i+1)*k], rows[j*k:(j+1)*k])
	}
	// Accounts, resolved once per profile; consecutive profiles often share one.
	accounts := map[string]int32{}
	lastID, last := "", int32(-1)
	ids := s.accountIDSlots(p)
	for i := range s.users {
		aid := ""
		for _, k := range ids {
			if r := s.rows[i*len(s.rowSlots)+k]; r != nil && r.AccountID != "" {
				aid = r.AccountID
				break
			}
		}
		if aid == "" {
			continue
		}
		if aid != lastID || last < 0 {
			a, ok := accounts[aid]
			if !ok {
				a = int32(len(s.accounts))
				ae, found := n.accounts[aid]
				if !found {
					ae = &emptyEntry
				}
				s.accounts = append(s.accounts, snapAccount{id: aid, e: ae})
				accounts[aid] = a
			}
			lastID, last = aid, a
		}
		s.users[i].acct = last
	}
	return s
}

type addrKey struct {
	addr uintptr
	i    int32
}

// sortByAddr sorts keys by address: an LSD radix sort on the address bits that
// vary, 11 bits a pass (a comparison sort of a million keys costs ten times more).
func sortByAddr(keys []addrKey) {
	if len(keys) < 2 {
		return
	}
	lo, hi := keys[0].addr, keys[0].addr
	for _, k := range keys {
		lo, hi = min(lo, k.addr), max(hi, k.addr)
	}
	buf := make([]addrKey, len(keys))
	src, dst := keys, buf
	const bits = 11
	for shift := uint(0); (hi-lo)>>shift != 0; shift += bits {
		var count [1 << bits]int
		for _, k := range src {
			count[((k.addr-lo)>>shift)&(1<<bits-1)]++
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, k := range src {
			d := ((k.addr - lo) >> shift) & (1<<bits - 1)
			dst[count[d]] = k
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
}

// rowSlots are the slots a plan reads user attributes and account ids from.
func rowSlots(p *plan) []int {
	seen := map[int]bool{}
	var out []int
	add := func(slot int) {
		if !seen[slot] {
			seen[slot] = true
			out = append(out, slot)
		}
	}
	for _, slot := range p.accountIDs {
		add(slot)
	}
	for _, cands := range p.userAttrs {
		for _, c := range cands {
			add(c.slot)
		}
	}
	sort.Ints(out)
	return out
}

// accountIDSlots maps the plan's account id slots, in precedence order, to
// positions in rowSlots.
func (s *snapshot) accountIDSlots(p *plan) []int {
	out := make([]int, 0, len(p.accountIDs))
	for _, slot := range p.accountIDs {
		out = append(out, sort.SearchInts(s.rowSlots, slot))
	}
	return out
}

// columns returns the columns of user (account=false) or account attributes,
// building the missing ones in one pass.
func (s *snapshot) columns(account bool, names []string, cands [][]cand) []*column {
	prefix := "u."
	if account {
		prefix = "a."
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*column, len(names))
	var build []int
	for i, name := range names {
		if c, ok := s.cols[prefix+name]; ok {
			out[i] = c
		} else {
			build = append(build, i)
		}
	}
	if len(build) == 0 {
		return out
	}
	n := len(s.users)
	if account {
		n = len(s.accounts)
	}
	var accountIDs []ref.Val // one boxed id per account, shared by its users
	if !account && slices.ContainsFunc(build, func(i int) bool { return names[i] == attr.AccountIDAttr }) {
		accountIDs = make([]ref.Val, len(s.accounts))
		for i, a := range s.accounts {
			accountIDs[i] = types.String(a.id)
		}
	}
	bs := make([]columnBuilder, len(build))
	for j := range bs {
		bs[j].init(n)
	}
	if account {
		for _, a := range s.accounts {
			for j, i := range build {
				if names[i] == attr.UserIDAttr {
					bs[j].add(types.String(a.id))
				} else {
					bs[j].add(lookupVal(a.e, cands[i]))
				}
			}
		}
	} else {
		// Resolve each attribute's candidates to positions in rowSlots.
		pos := make([][]cand, len(build))
		for j, i := range build {
			for _, c := range cands[i] {
				if c.slot >= 0 {
					pos[j] = append(pos[j], cand{slot: sort.SearchInts(s.rowSlots, c.slot), col: c.col})
				}
			}
		}
		k := len(s.rowSlots)
		for u := range s.users {
			rows := s.rows[u*k : (u+1)*k]
			for j, i := range build {
				switch names[i] {
				case attr.UserIDAttr:
					bs[j].add(types.String(s.users[u].id))
				case attr.AccountIDAttr:
					if a := s.users[u].acct; a >= 0 {
						bs[j].add(accountIDs[a])
					} else {
						bs[j].add(nil)
					}
				default:
					bs[j].add(rowsVal(rows, pos[j]))
				}
			}
		}
	}
	for j, i := range build {
		c := bs[j].finish()
		s.cols[prefix+names[i]] = c
		out[i] = c
	}
	return out
}

// rowsVal is lookup over a profile's rows in the snapshot.
func rowsVal(rows []*attr.Row, cands []cand) ref.Val {
	for _, c := range cands {
		if r := rows[c.slot]; r != nil && c.col < len(r.Values) && r.Values[c.col] != nil {
			v, _ := r.Values[c.col].(ref.Val)
			return v
		}
	}
	return nil
}

func lookupVal(e *entry, cands []cand) ref.Val {
	v, ok := lookup(e, cands)
	if !ok {
		return nil
	}
	rv, _ := v.(ref.Val)
	return rv
}

// column is one attribute over a snapshot's profiles (or accounts), nil where a
// profile has no value. A column with few distinct values is dictionary-coded:
// two bytes per profile, and the few distinct values stay in cache; others hold
// the values themselves.
type column struct {
	codes []uint16
	dict  []ref.Val // dict[0] is nil (no value)
	vals  []ref.Val
}

func (c *column) at(i int32) ref.Val {
	if c.vals != nil {
		return c.vals[i]
	}
	return c.dict[c.codes[i]]
}

// maxDict is the most distinct values a dictionary-coded column holds.
const maxDict = math.MaxUint16

// columnBuilder dictionary-codes values of comparable CEL types while there are
// at most maxDict distinct ones, then switches to plain values.
type columnBuilder struct {
	c column
	// Per-type indexes: typed keys hash fast and do not allocate.
	strs  map[types.String]uint16
	ints  map[types.Int]uint16
	times map[types.Timestamp]uint16
	other map[any]uint16
	last  ref.Val // the previous value and its code: neighbours often repeat
	lastC uint16
}

func (b *columnBuilder) init(n int) {
	b.c.codes = make([]uint16, 0, n)
	b.c.dict = []ref.Val{nil}
}

func (b *columnBuilder) add(v ref.Val) {
	if b.c.vals != nil {
		b.c.vals = append(b.c.vals, v)
		return
	}
	if v == nil {
		b.c.codes = append(b.c.codes, 0)
		return
	}
	if b.sameAsLast(v) {
		b.c.codes = append(b.c.codes, b.lastC)
		return
	}
	code, ok := b.code(v)
	if !ok {
		// Not dictionary-codable: decode what was coded so far into values.
		vals := make([]ref.Val, len(b.c.codes), cap(b.c.codes))
		for i, code := range b.c.codes {
			vals[i] = b.c.dict[code]
		}
		*b = columnBuilder{c: column{vals: append(vals, v)}}
		return
	}
	b.last, b.lastC = v, code
	b.c.codes = append(b.c.codes, code)
}

// sameAsLast reports whether v is exactly the previous value (for the types
// where Go's == is CEL identity).
func (b *columnBuilder) sameAsLast(v ref.Val) bool {
	switch x := v.(type) {
	case types.String:
		l, ok := b.last.(types.String)
		return ok && l == x
	case types.Int:
		l, ok := b.last.(types.Int)
		return ok && l == x
	case types.Timestamp:
		l, ok := b.last.(types.Timestamp)
		return ok && l == x
	}
	return false
}

// code returns v's code, adding it to the dictionary if there is room; false
// when v is not dictionary-codable or the dictionary is full. Keys identify
// values exactly: doubles by their bits (0.0 and -0.0 differ), timestamps by
// instant and location. Lists, maps and bytes are not coded.
func (b *columnBuilder) code(v ref.Val) (uint16, bool) {
	switch x := v.(type) {
	case types.String:
		if b.strs == nil {
			b.strs = map[types.String]uint16{}
		}
		return intern(b, b.strs, x, v)
	case types.Int:
		if b.ints == nil {
			b.ints = map[types.Int]uint16{}
		}
		return intern(b, b.ints, x, v)
	case types.Timestamp:
		if b.times == nil {
			b.times = map[types.Timestamp]uint16{}
		}
		return intern(b, b.times, x, v)
	case types.Double:
		return b.internOther(doubleKey(math.Float64bits(float64(x))), v)
	case types.Uint, types.Bool, types.Duration:
		return b.internOther(x, v)
	}
	return 0, false
}

func (b *columnBuilder) internOther(key any, v ref.Val) (uint16, bool) {
	if b.other == nil {
		b.other = map[any]uint16{}
	}
	return intern(b, b.other, key, v)
}

func intern[K comparable](b *columnBuilder, index map[K]uint16, key K, v ref.Val) (uint16, bool) {
	if code, ok := index[key]; ok {
		return code, true
	}
	if len(b.c.dict) > maxDict {
		return 0, false
	}
	code := uint16(len(b.c.dict))
	b.c.dict = append(b.c.dict, v)
	index[key] = code
	return code, true
}

func (b *columnBuilder) finish() *column {
	c := b.c
	if c.vals == nil && c.codes == nil {
		c.codes = []uint16{}
	}
	return &c
}

type doubleKey uint64
