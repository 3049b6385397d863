package profile

import (
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/attr"
)

// A snapshot is a dense, read-only copy of one view's profile index: every
// profile at its position (positions.go) with its account resolved to an index
// once, and, built on demand, one column per attribute a rule reads.
// Evaluating a rule over a million profiles then walks slices instead of
// iterating a map, looking accounts up by id and chasing pointers to scattered
// rows.
//
// A snapshot never changes once built and holds no reference to the
// namespace's mutable entries (an account's entry is copied), so a full
// evaluation reads it without the namespace's lock (View.Detach) while syncs
// go on. After a change, the next reader derives the new generation's
// snapshot from the last one: the positions of the users the journal names
// are patched, in the rows and in every column built, so a sync that changed
// k profiles costs a copy of the arrays and k patches, not a rebuild from the
// map (derive).
type snapshot struct {
	gen uint64
	// users is by position; an empty id is a hole (no profile there: a free
	// position, or a user known from signals alone). count is the profiles.
	users []snapUser
	count int
	// accounts are the accounts the profiles belong to, each at the index
	// accountIdx gives its id.
	accounts   []snapAccount
	accountIdx map[string]int32
	sharedIdx  bool // accountIdx is the snapshot's it was derived from: copy before adding
	// rowSlots are the source slots user attributes are read from; rows holds,
	// for the user at position i, its row in each: rows[i*len(rowSlots)+k] (nil:
	// none). Reading a column from here never touches the user's map entry.
	rowSlots []int
	rows     []*row

	mu   sync.Mutex
	cols map[string]*column // "u." or "a." + attribute name
}

type snapUser struct {
	id   string
	acct int32 // index in accounts; -1: the user has no account id
}

type snapAccount struct {
	id string
	e  *entry // the snapshot's own copy of the account's entry; emptyEntry for an account known by id only
}

// viewCache is one source selection's plan and its latest snapshot.
type viewCache struct {
	plan *plan
	mu   sync.Mutex
	snap *snapshot
}

// maxCachedViews bounds the source selections whose snapshots are kept:
// personas normally read all of a namespace's sources.
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

// invalidate drops every cached plan and snapshot: a change of how profiles
// merge (all). Other changes keep them, for snapshots to be derived from.
// The caller holds n.mu for writing.
func (n *Namespace) invalidate(all bool) {
	if !all {
		return
	}
	n.viewMu.Lock()
	clear(n.views)
	n.viewMu.Unlock()
}

// snapshot returns the view's snapshot of the namespace's generation: the
// cached one, one derived from it, or a new one. The caller holds n.mu for
// reading.
func (vc *viewCache) snapshot(n *Namespace) *snapshot {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	s := vc.snap
	switch {
	case s != nil && s.gen == n.gen:
		return s
	case s != nil && s.gen < n.gen:
		// Patching is cheaper than a rebuild when the journal covers s's
		// generation, nothing changed how every profile merges, and fewer than
		// a quarter of the profiles changed.
		if c := n.journal.since(s.gen); !c.All && c.Len() <= len(s.users)/4 {
			vc.snap = s.derive(n, vc.plan, c)
			return vc.snap
		}
	}
	vc.snap = buildSnapshot(n, vc.plan)
	return vc.snap
}

func buildSnapshot(n *Namespace, p *plan) *snapshot {
	s := &snapshot{gen: n.gen, cols: map[string]*column{}, rowSlots: rowSlots(p), accountIdx: map[string]int32{}}
	size := n.userPos.size()
	s.users = make([]snapUser, size)
	s.rows = make([]*row, size*len(s.rowSlots))
	for id, e := range n.users {
		s.setUser(n, p, id, e)
	}
	return s
}

// setUser writes the user's profile at its position: its rows and account,
// or a hole when it is not a profile of the view.
func (s *snapshot) setUser(n *Namespace, p *plan, id string, e *entry) {
	i := int(e.pos)
	if !p.isProfile(e) {
		s.hole(i)
		return
	}
	k := len(s.rowSlots)
	rows := s.rows[i*k : (i+1)*k]
	for j, slot := range s.rowSlots {
		rows[j] = e.row(slot)
	}
	if s.users[i].id == "" {
		s.count++
	}
	s.users[i] = snapUser{id: id, acct: s.account(n, accountID(p, e))}
}

// hole empties position i.
func (s *snapshot) hole(i int) {
	if s.users[i].id != "" {
		s.count--
	}
	s.users[i] = snapUser{acct: -1}
	k := len(s.rowSlots)
	clear(s.rows[i*k : (i+1)*k])
}

// account returns the index of the account with id aid (-1 for none), adding
// it with a copy of its entry when the snapshot does not hold it yet.
func (s *snapshot) account(n *Namespace, aid string) int32 {
	if aid == "" {
		return -1
	}
	if a, ok := s.accountIdx[aid]; ok {
		return a
	}
	if s.sharedIdx {
		s.accountIdx, s.sharedIdx = maps.Clone(s.accountIdx), false
	}
	a := int32(len(s.accounts))
	s.accounts = append(s.accounts, snapAccount{id: aid, e: accountEntry(n, aid)})
	s.accountIdx[aid] = a
	return a
}

// accountEntry is a copy of the account's entry, which later syncs change in
// place; emptyEntry when the account has no data.
func accountEntry(n *Namespace, aid string) *entry {
	e, ok := n.accounts[aid]
	if !ok {
		return &emptyEntry
	}
	c := *e
	if e.more != nil {
		more := slices.Clone(*e.more)
		c.more = &more
	}
	return &c
}

// derive returns the snapshot of the namespace's generation, given what
// changed since s's (c): s's arrays copied, the changed users' positions and
// the changed accounts patched, and the columns s built patched likewise (a
// column that would need a value its dictionary lacks is left out, and built
// again on demand). s itself is not changed: a detached view may be reading it.
func (s *snapshot) derive(n *Namespace, p *plan, c Changes) *snapshot {
	size, k := n.userPos.size(), len(s.rowSlots)
	d := &snapshot{gen: n.gen, count: s.count, rowSlots: s.rowSlots, cols: map[string]*column{},
		accounts: slices.Clone(s.accounts), accountIdx: s.accountIdx, sharedIdx: true}
	d.users = append(make([]snapUser, 0, size), s.users...)
	for len(d.users) < size {
		d.users = append(d.users, snapUser{acct: -1})
	}
	d.rows = append(make([]*row, 0, size*k), s.rows...)
	d.rows = d.rows[:size*k]
	var users []int32
	// Positions freed since s first (a removed user, or one that moved), then
	// the changed users where they are now: a position reused by a changed
	// user ends up holding it.
	for _, i := range c.vacated {
		if int(i) < len(s.users) {
			d.hole(int(i))
			users = append(users, i)
		}
	}
	for _, id := range c.Users {
		if e, ok := n.users[id]; ok {
			d.setUser(n, p, id, e)
			users = append(users, e.pos)
		}
	}
	var accounts []int32
	for _, id := range c.Accounts {
		if a, ok := d.accountIdx[id]; ok && int(a) < len(s.accounts) {
			d.accounts[a].e = accountEntry(n, id)
			accounts = append(accounts, a)
		}
	}
	for a := len(s.accounts); a < len(d.accounts); a++ {
		accounts = append(accounts, int32(a)) // new: added by setUser
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, col := range s.cols {
		at, n := users, len(d.users)
		if col.account {
			at, n = accounts, len(d.accounts)
		}
		if pc := col.patch(d, at, n); pc != nil {
			d.cols[key] = pc
		}
	}
	return d
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
	var build []*column
	for i, name := range names {
		if c, ok := s.cols[prefix+name]; ok {
			out[i] = c
			continue
		}
		c := &column{account: account, name: name, cands: cands[i]}
		if !account {
			c.cands = s.rowPositions(cands[i])
		}
		out[i], s.cols[prefix+name] = c, c
		build = append(build, c)
	}
	if len(build) == 0 {
		return out
	}
	n := len(s.users)
	if account {
		n = len(s.accounts)
	}
	bs := make([]columnBuilder, len(build))
	for j := range bs {
		bs[j].init(n)
	}
	for i := range n {
		for j, c := range build {
			bs[j].add(s.value(c, int32(i)))
		}
	}
	for j, c := range build {
		bs[j].finish(c)
	}
	return out
}

// rowPositions resolves candidates' source slots to positions in rowSlots.
func (s *snapshot) rowPositions(cands []cand) []cand {
	var out []cand
	for _, c := range cands {
		if c.slot >= 0 {
			out = append(out, cand{slot: sort.SearchInts(s.rowSlots, c.slot), col: c.col})
		}
	}
	return out
}

// value is column c's value at position (or account index) i.
func (s *snapshot) value(c *column, i int32) ref.Val {
	if c.account {
		a := &s.accounts[i]
		if c.name == attr.UserIDAttr {
			return types.String(a.id)
		}
		return lookupVal(a.e, c.cands)
	}
	u := &s.users[i]
	switch {
	case u.id == "":
		return nil // a hole
	case c.name == attr.UserIDAttr:
		return types.String(u.id)
	case c.name == attr.AccountIDAttr:
		if u.acct < 0 {
			return nil
		}
		return types.String(s.accounts[u.acct].id)
	}
	k := len(s.rowSlots)
	return rowsVal(s.rows[int(i)*k:int(i+1)*k], c.cands)
}

// rowsVal is lookup over a profile's rows in the snapshot.
func rowsVal(rows []*row, cands []cand) ref.Val {
	for _, c := range cands {
		if v := rows[c.slot].val(c.col); v != nil {
			return v
		}
	}
	return nil
}

// lookupVal is an attribute's value in an entry, by its candidates in
// precedence order; nil when no source has one.
func lookupVal(e *entry, cands []cand) ref.Val {
	for _, c := range cands {
		if v := e.row(c.slot).val(c.col); v != nil {
			return v
		}
	}
	return nil
}

// column is one attribute over a snapshot's profiles (or accounts), nil where a
// profile has no value. A column with few distinct values is dictionary-coded:
// two bytes per profile, and the few distinct values stay in cache; others hold
// the values themselves.
type column struct {
	codes []uint16
	dict  []ref.Val // dict[0] is nil (no value)
	vals  []ref.Val
	// index finds a value's code (read-only once built: derived columns share it).
	index *dictIndex

	// What the column reads, for a derived snapshot to patch it: an account
	// or a user attribute, and its candidates (for users, positions in
	// rowSlots).
	account bool
	name    string
	cands   []cand
}

func (c *column) at(i int32) ref.Val {
	if c.vals != nil {
		return c.vals[i]
	}
	return c.dict[c.codes[i]]
}

// patch returns a copy of c, n long, with the values at positions at read
// again from d. A value a coded column's dictionary lacks is added to a copy
// of the dictionary; nil when it is full or the value cannot be coded (the
// column is then built again when read).
func (c *column) patch(d *snapshot, at []int32, n int) *column {
	out := *c
	if c.vals != nil {
		out.vals = append(make([]ref.Val, 0, n), c.vals...)[:n]
		for _, i := range at {
			out.vals[i] = d.value(c, i)
		}
		return &out
	}
	out.codes = append(make([]uint16, 0, n), c.codes...)[:n]
	for _, i := range at {
		v := d.value(c, i)
		code, ok := out.index.find(v)
		if !ok {
			if out.index == c.index {
				// The first new value: the dictionary is the old column's too.
				out.dict, out.index = slices.Clone(c.dict), c.index.clone()
			}
			if code, ok = out.index.add(&out.dict, v); !ok {
				return nil
			}
		}
		out.codes[i] = code
	}
	return &out
}

// maxDict is the most distinct values a dictionary-coded column holds.
const maxDict = math.MaxUint16

// dictIndex maps values to codes. Per-type maps: typed keys hash fast and do
// not allocate. Keys identify values exactly: doubles by their bits (0.0 and
// -0.0 differ), timestamps by instant and location. Lists, maps and bytes are
// not coded.
type dictIndex struct {
	strs  map[types.String]uint16
	ints  map[types.Int]uint16
	times map[types.Timestamp]uint16
	other map[any]uint16
}

// find returns v's code (0 for nil), false when the dictionary lacks it.
func (x *dictIndex) find(v ref.Val) (uint16, bool) {
	var code uint16
	var ok bool
	switch k := v.(type) {
	case nil:
		return 0, true
	case types.String:
		code, ok = x.strs[k]
	case types.Int:
		code, ok = x.ints[k]
	case types.Timestamp:
		code, ok = x.times[k]
	default:
		if key, codable := otherKey(v); codable {
			code, ok = x.other[key]
		}
	}
	return code, ok
}

// add appends v to the dictionary, false when it is full or v cannot be
// coded.
func (x *dictIndex) add(dict *[]ref.Val, v ref.Val) (uint16, bool) {
	b := columnBuilder{dict: *dict, index: *x}
	code, ok := b.code(v)
	*dict, *x = b.dict, b.index
	return code, ok
}

// clone returns a copy whose maps can be added to.
func (x *dictIndex) clone() *dictIndex {
	return &dictIndex{strs: maps.Clone(x.strs), ints: maps.Clone(x.ints), times: maps.Clone(x.times), other: maps.Clone(x.other)}
}

// otherKey is the key of a codable value of the types in dictIndex.other.
func otherKey(v ref.Val) (any, bool) {
	switch x := v.(type) {
	case types.Double:
		return doubleKey(math.Float64bits(float64(x))), true
	case types.Uint, types.Bool, types.Duration:
		return x, true
	}
	return nil, false
}

// columnBuilder dictionary-codes values of comparable CEL types while there are
// at most maxDict distinct ones, then switches to plain values.
type columnBuilder struct {
	codes []uint16
	dict  []ref.Val
	vals  []ref.Val
	index dictIndex
	last  ref.Val // the previous value and its code: neighbours often repeat
	lastC uint16
}

func (b *columnBuilder) init(n int) {
	b.codes = make([]uint16, 0, n)
	b.dict = []ref.Val{nil}
}

func (b *columnBuilder) add(v ref.Val) {
	if b.vals != nil {
		b.vals = append(b.vals, v)
		return
	}
	if v == nil {
		b.codes = append(b.codes, 0)
		return
	}
	if b.sameAsLast(v) {
		b.codes = append(b.codes, b.lastC)
		return
	}
	code, ok := b.code(v)
	if !ok {
		// Not dictionary-codable: decode what was coded so far into values.
		vals := make([]ref.Val, len(b.codes), cap(b.codes))
		for i, code := range b.codes {
			vals[i] = b.dict[code]
		}
		*b = columnBuilder{vals: append(vals, v)}
		return
	}
	b.last, b.lastC = v, code
	b.codes = append(b.codes, code)
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
// when v is not dictionary-codable or the dictionary is full.
func (b *columnBuilder) code(v ref.Val) (uint16, bool) {
	x := &b.index
	switch k := v.(type) {
	case types.String:
		if x.strs == nil {
			x.strs = map[types.String]uint16{}
		}
		return intern(b, x.strs, k, v)
	case types.Int:
		if x.ints == nil {
			x.ints = map[types.Int]uint16{}
		}
		return intern(b, x.ints, k, v)
	case types.Timestamp:
		if x.times == nil {
			x.times = map[types.Timestamp]uint16{}
		}
		return intern(b, x.times, k, v)
	}
	key, ok := otherKey(v)
	if !ok {
		return 0, false
	}
	if x.other == nil {
		x.other = map[any]uint16{}
	}
	return intern(b, x.other, key, v)
}

func intern[K comparable](b *columnBuilder, index map[K]uint16, key K, v ref.Val) (uint16, bool) {
	if code, ok := index[key]; ok {
		return code, true
	}
	if len(b.dict) > maxDict {
		return 0, false
	}
	code := uint16(len(b.dict))
	b.dict = append(b.dict, v)
	index[key] = code
	return code, true
}

// finish stores what was built in c.
func (b *columnBuilder) finish(c *column) {
	if b.vals != nil {
		c.vals = b.vals
		return
	}
	c.codes, c.dict, c.index = b.codes, b.dict, &b.index
	if c.codes == nil {
		c.codes = []uint16{}
	}
}

type doubleKey uint64
