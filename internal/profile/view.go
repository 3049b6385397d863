package profile

import (
	"iter"
	"sort"
	"sync/atomic"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/attr"
)

// View is a consistent read of a namespace's profiles, limited to some sources.
// It is only valid inside the Read callback that received it, except a
// detached one (Detach), which reads a snapshot only.
type View struct {
	n    *Namespace
	plan *plan
	vc   *viewCache
	snap atomic.Pointer[snapshot] // built on first use; a View may be shared by goroutines
	// detached: the view reads its snapshot, without the namespace's lock.
	detached bool
}

// Read calls fn with a view over the given sources (nil or empty: all). Writers
// wait until fn returns, so keep fn to the evaluation itself.
func (n *Namespace) Read(sources []string, fn func(v *View)) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	vc := n.view(sources)
	fn(&View{n: n, plan: vc.plan, vc: vc})
}

// snapshot returns the view's dense snapshot, building it on first use.
func (v *View) snapshot() *snapshot {
	if s := v.snap.Load(); s != nil {
		return s
	}
	s := v.vc.snapshot(v.n)
	v.snap.Store(s)
	return s
}

// Detach returns a view of the same profiles that stays valid after Read
// returns and holds no lock: it reads the view's snapshot (built or brought up
// to date here, under the read lock), never the namespace's maps. A full
// evaluation of a million profiles runs on it while syncs apply their changes
// (which would otherwise wait for it), and the next full evaluation derives its
// snapshot from this one instead of rebuilding it. Call it inside Read.
//
// A detached view answers what the snapshot holds: Users, Len, UserIDs, the
// fields and, by id, User (a user added since reads as absent). The methods
// about the namespace rather than the profiles (Changes, UsersOfAccounts,
// UsersKnown, PlaybookPublished) take the read lock and answer for the
// namespace as it is now.
func (v *View) Detach() *View {
	d := &View{n: v.n, plan: v.plan, vc: v.vc, detached: true}
	d.snap.Store(v.snapshot())
	return d
}

// rlock takes the namespace's read lock for a detached view (a view inside
// Read holds it already); the returned func releases it.
func (v *View) rlock() func() {
	if !v.detached {
		return func() {}
	}
	v.n.mu.RLock()
	return v.n.mu.RUnlock
}

// Generation is the namespace generation this view reads.
func (v *View) Generation() uint64 {
	if v.detached {
		return v.snap.Load().gen
	}
	return v.n.gen
}

// Schema is the type of every user and account attribute in the view, built-ins
// included.
type Schema struct {
	User    map[string]attr.Type
	Account map[string]attr.Type
}

// Schema returns the attribute types of the view. user.playbooks is always
// declared, before any playbook has run (or even exists), so a rule reading it
// type-checks at admission and in the controller alike.
func (v *View) Schema() Schema {
	s := Schema{User: map[string]attr.Type{attr.UserIDAttr: attr.String, attr.AccountIDAttr: attr.String, attr.PlaybooksAttr: attr.Map},
		Account: map[string]attr.Type{attr.UserIDAttr: attr.String}}
	for k, t := range v.plan.userTypes {
		s.User[k] = t
	}
	for k, t := range v.plan.accountTypes {
		s.Account[k] = t
	}
	return s
}

// User is one merged user profile.
type User struct {
	v  *View
	id string
	l  *lookedUp // for a user looked up by id; nil for an indexed one
	// idx is the profile's index in the view's snapshot (-1 when looked up by
	// id), acct its account's index there (-1: no account id).
	idx, acct int32
}

// Users yields every user that has a row in one of the view's User sources, in
// no particular order. Users known only from signals are not profiles.
func (v *View) Users() iter.Seq[User] {
	return func(yield func(User) bool) {
		s := v.snapshot()
		for i := range s.users {
			u := &s.users[i]
			if u.id == "" {
				continue // a hole
			}
			if !yield(User{v: v, id: u.id, idx: int32(i), acct: u.acct}) {
				return
			}
		}
	}
}

// Positions is the number of positions of the view's snapshot: every
// profile's position (User.Pos) is below it.
func (v *View) Positions() int { return len(v.snapshot().users) }

// Len is the number of profiles in the view.
func (v *View) Len() int { return v.snapshot().count }

// UserIDs returns the ids of all profiles, sorted.
func (v *View) UserIDs() []string {
	var ids []string
	for u := range v.Users() {
		ids = append(ids, u.id)
	}
	sort.Strings(ids)
	return ids
}

// lookedUp is a user looked up by id, with its account resolved once: a
// change-driven evaluation reads a few profiles this way, each attribute of
// the account without looking the account up again.
type lookedUp struct {
	e   *entry
	aid string
	ae  *entry // nil: no account id; emptyEntry: an account known by id only
}

// User returns one profile.
func (v *View) User(id string) (User, bool) {
	if v.detached {
		return v.snapshotUser(id)
	}
	e, ok := v.n.users[id]
	if !ok || !v.plan.isProfile(e) {
		return User{}, false
	}
	l := &lookedUp{e: e, aid: accountID(v.plan, e)}
	if l.aid != "" {
		if l.ae = v.n.accounts[l.aid]; l.ae == nil {
			l.ae = &emptyEntry
		}
	}
	return User{v: v, id: id, l: l, idx: -1, acct: -1}, true
}

// snapshotUser is User for a detached view: the profile at the user's
// position in the snapshot, if it is there.
func (v *View) snapshotUser(id string) (User, bool) {
	unlock := v.rlock()
	e, ok := v.n.users[id]
	var i int32
	if ok {
		i = e.pos
	}
	unlock()
	s := v.snap.Load()
	if !ok || int(i) >= len(s.users) || s.users[i].id != id {
		return User{}, false
	}
	return User{v: v, id: id, idx: i, acct: s.users[i].acct}, true
}

// UserAt returns the profile at a position of the view's snapshot, if there
// is one (not a hole).
func (v *View) UserAt(pos int32) (User, bool) {
	s := v.snapshot()
	if pos < 0 || int(pos) >= len(s.users) || s.users[pos].id == "" {
		return User{}, false
	}
	return User{v: v, id: s.users[pos].id, idx: pos, acct: s.users[pos].acct}, true
}

// Position returns the position of a user the namespace knows, profile or
// not (a user known from signals alone has one too): it stays the same while
// the user is known, and a position freed meanwhile is in Changes.Vacated.
func (v *View) Position(id string) (int32, bool) {
	defer v.rlock()()
	e, ok := v.n.users[id]
	if !ok {
		return -1, false
	}
	return e.pos, true
}

// Pos is the user's position (see Position).
func (u User) Pos() int32 {
	if u.l != nil {
		return u.l.e.pos
	}
	return u.idx
}

// isProfile reports whether the entry is a profile under the plan: it has a
// row in one of the User sources (signals or playbook state alone make none).
func (p *plan) isProfile(e *entry) bool {
	for _, slot := range p.userSlots {
		if e.row(slot) != nil {
			return true
		}
	}
	return false
}

// ID is the user id.
func (u User) ID() string { return u.id }

// AccountID is the user's account id from the User source of highest precedence
// that has one, or "".
func (u User) AccountID() string {
	if u.idx >= 0 {
		if u.acct < 0 {
			return ""
		}
		return u.v.snap.Load().accounts[u.acct].id
	}
	return u.l.aid
}

func accountID(p *plan, e *entry) string {
	for _, slot := range p.accountIDs {
		if r := e.row(slot); r != nil && r.alen > 0 {
			return r.account()
		}
	}
	return ""
}

// Get returns a user attribute, as a CEL value (ref.Val), from the source of
// highest precedence that has a value for this user. Built-ins: id, accountId.
func (u User) Get(name string) (any, bool) {
	switch name {
	case attr.UserIDAttr:
		return types.String(u.id), true
	case attr.AccountIDAttr:
		id := u.AccountID()
		return types.String(id), id != ""
	}
	if v := u.lookup(u.v.plan.userAttrs[name]); v != nil {
		return v, true
	}
	return nil, false
}

// Account returns the user's account, if the user has one with data.
func (u User) Account() (Account, bool) {
	if u.idx >= 0 {
		if u.acct < 0 {
			return Account{}, false
		}
		a := &u.v.snap.Load().accounts[u.acct]
		return Account{v: u.v, id: a.id, e: a.e, idx: u.acct}, true
	}
	if u.l.ae == nil {
		return Account{}, false
	}
	// The account id is known even without account data (emptyEntry): rules
	// on account.id still work.
	return Account{v: u.v, id: u.l.aid, e: u.l.ae, idx: -1}, true
}

// emptyEntry stands for an account known by id only.
var emptyEntry entry

// Account is one merged account.
type Account struct {
	v   *View
	id  string
	e   *entry
	idx int32 // index in the view's snapshot, -1 when not from one
}

// ID is the account id.
func (a Account) ID() string { return a.id }

// Get returns an account attribute, as a CEL value (ref.Val), from the source of
// highest precedence that has a value for this account. Built-in: id.
func (a Account) Get(name string) (any, bool) {
	if name == attr.UserIDAttr {
		return types.String(a.id), true
	}
	if v := lookupVal(a.e, a.v.plan.accountAttrs[name]); v != nil {
		return v, true
	}
	return nil, false
}

// Fields resolves attribute names once per view, so that reading an attribute of
// each of a million profiles is an index into a dense column, not a map lookup by
// name and a walk through the profile's rows.
type Fields struct {
	cands [][]cand
	cols  []*column
}

// Built-in pseudo slots in Fields.
const (
	builtinID        = -1
	builtinAccountID = -2
)

// UserFields resolves user attribute names (built-ins included) for User.Field
// and User.Val. It builds (or reuses) the view's dense snapshot columns of these
// attributes, so call it once per evaluation, not per profile.
func (v *View) UserFields(names []string) Fields {
	return v.fields(names, nil, v.plan.userAttrs, false)
}

// AccountFields resolves account attribute names for Account.Field and
// User.AccountVal.
func (v *View) AccountFields(names []string) Fields {
	return v.fields(names, nil, v.plan.accountAttrs, true)
}

// UserFieldsDense is UserFields that builds columns only for the names with
// dense[i] set; the others are still readable, profile by profile, without one.
func (v *View) UserFieldsDense(names []string, dense []bool) Fields {
	return v.fields(names, dense, v.plan.userAttrs, false)
}

// AccountFieldsDense is AccountFields with columns only where dense[i] is set.
func (v *View) AccountFieldsDense(names []string, dense []bool) Fields {
	return v.fields(names, dense, v.plan.accountAttrs, true)
}

func (v *View) fields(names []string, dense []bool, attrs map[string][]cand, account bool) Fields {
	f := Fields{cands: make([][]cand, len(names))}
	var build []string
	var at []int
	for i, n := range names {
		switch {
		case n == attr.UserIDAttr:
			f.cands[i] = []cand{{slot: builtinID}}
		case !account && n == attr.AccountIDAttr:
			f.cands[i] = []cand{{slot: builtinAccountID}}
		default:
			f.cands[i] = attrs[n]
		}
		if dense == nil || dense[i] {
			build = append(build, n)
			at = append(at, i)
		}
	}
	f.cols = make([]*column, len(names))
	if len(build) > 0 {
		cands := make([][]cand, len(at))
		for j, i := range at {
			cands[j] = f.cands[i]
		}
		for j, c := range v.snapshot().columns(account, build, cands) {
			f.cols[at[j]] = c
		}
	}
	return f
}

// Field returns the i-th resolved attribute of the user (a CEL value).
func (u User) Field(f *Fields, i int) (any, bool) {
	v := u.Val(f, i)
	return v, v != nil
}

// Val returns the i-th resolved attribute of the user as a CEL value, nil when
// the profile has none. It does not allocate.
func (u User) Val(f *Fields, i int) ref.Val {
	if c := f.cols[i]; u.idx >= 0 && c != nil {
		return c.at(u.idx)
	}
	return u.slowVal(f, i)
}

func (u User) slowVal(f *Fields, i int) ref.Val {
	c := f.cands[i]
	if len(c) == 1 && c[0].slot < 0 {
		if c[0].slot == builtinID {
			return types.String(u.id)
		}
		if id := u.AccountID(); id != "" {
			return types.String(id)
		}
		return nil
	}
	return u.lookup(c)
}

// lookup reads an attribute by its candidates: from the snapshot's rows for an
// indexed user, from the map entry for one looked up by id.
func (u User) lookup(cands []cand) ref.Val {
	if u.idx < 0 {
		return lookupVal(u.l.e, cands)
	}
	s := u.v.snap.Load()
	k := len(s.rowSlots)
	rows := s.rows[int(u.idx)*k : int(u.idx+1)*k]
	for _, c := range cands {
		if i := sort.SearchInts(s.rowSlots, c.slot); i < k && s.rowSlots[i] == c.slot {
			if v := rows[i].val(c.col); v != nil {
				return v
			}
		}
	}
	return nil
}

// AccountVal returns the i-th resolved attribute (of AccountFields) of the
// user's account as a CEL value, nil when the user has no account or the
// account has no such value. It does not allocate.
func (u User) AccountVal(f *Fields, i int) ref.Val {
	if c := f.cols[i]; u.idx >= 0 && c != nil {
		if u.acct < 0 {
			return nil
		}
		return c.at(u.acct)
	}
	a, ok := u.Account()
	if !ok {
		return nil
	}
	return a.Val(f, i)
}

// Indexed reports whether the user came from the view's snapshot (Users, UserAt)
// rather than a lookup by id: only then do Code and AccountCode apply.
func (u User) Indexed() bool { return u.idx >= 0 }

// Dict returns the distinct values of the i-th resolved attribute when its
// column is dictionary-coded (index 0 stands for "no value"), or nil. A rule
// clause that reads only this attribute can be evaluated once per distinct
// value instead of once per profile.
func (f *Fields) Dict(i int) []ref.Val {
	if f.cols[i] == nil {
		return nil
	}
	return f.cols[i].dict
}

// Codes returns the dictionary codes of the i-th resolved attribute's column
// (nil when it is not dictionary-coded), indexed by Positions: the profile's
// for user attributes, its account's for account attributes.
func (f *Fields) Codes(i int) []uint16 {
	if f.cols[i] == nil {
		return nil
	}
	return f.cols[i].codes
}

// Positions returns an indexed user's position in the view's user columns and
// its account's in the account columns (-1: no account).
func (u User) Positions() (user, account int32) { return u.idx, u.acct }

// Field returns the i-th resolved attribute of the account (a CEL value).
func (a Account) Field(f *Fields, i int) (any, bool) {
	v := a.Val(f, i)
	return v, v != nil
}

// Val returns the i-th resolved attribute of the account, nil when absent.
func (a Account) Val(f *Fields, i int) ref.Val {
	if c := f.cols[i]; a.idx >= 0 && c != nil {
		return c.at(a.idx)
	}
	c := f.cands[i]
	if len(c) == 1 && c[0].slot == builtinID {
		return types.String(a.id)
	}
	return lookupVal(a.e, c)
}

// DeclaredSchema is the schema that sources with these declarations would give
// (same precedence and conflict rules as the store), without any data: admission
// type-checks rules with it before anything is loaded.
func DeclaredSchema(sources []*SourceData) Schema {
	v := &View{plan: buildPlan(sources, nil)}
	return v.Schema()
}
