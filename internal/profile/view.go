package profile

import (
	"iter"
	"sort"

	"github.com/google/cel-go/common/types"

	"github.com/usersuccess/persona-operator/internal/attr"
)

// View is a consistent read of a namespace's profiles, limited to some sources.
// It is only valid inside the Read callback that received it.
type View struct {
	n    *Namespace
	plan *plan
}

// Read calls fn with a view over the given sources (nil or empty: all). Writers
// wait until fn returns, so keep fn to the evaluation itself.
func (n *Namespace) Read(sources []string, fn func(v *View)) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	p := n.plan
	if len(sources) > 0 {
		only := make(map[string]bool, len(sources))
		for _, s := range sources {
			only[s] = true
		}
		p = buildPlan(n.sources, only)
	}
	fn(&View{n: n, plan: p})
}

// Generation is the namespace generation this view reads.
func (v *View) Generation() uint64 { return v.n.gen }

// Schema is the type of every user and account attribute in the view, built-ins
// included.
type Schema struct {
	User    map[string]attr.Type
	Account map[string]attr.Type
}

// Schema returns the attribute types of the view.
func (v *View) Schema() Schema {
	s := Schema{User: map[string]attr.Type{attr.UserIDAttr: attr.String, attr.AccountIDAttr: attr.String},
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
	e  *entry
}

// Users yields every user that has a row in one of the view's User sources, in
// no particular order. Users known only from signals are not profiles.
func (v *View) Users() iter.Seq[User] {
	return func(yield func(User) bool) {
		for id, e := range v.n.users {
			if v.isProfile(e) && !yield(User{v: v, id: id, e: e}) {
				return
			}
		}
	}
}

// UserIDs returns the ids of all profiles, sorted.
func (v *View) UserIDs() []string {
	var ids []string
	for u := range v.Users() {
		ids = append(ids, u.id)
	}
	sort.Strings(ids)
	return ids
}

// User returns one profile.
func (v *View) User(id string) (User, bool) {
	e, ok := v.n.users[id]
	if !ok || !v.isProfile(e) {
		return User{}, false
	}
	return User{v: v, id: id, e: e}, true
}

func (v *View) isProfile(e *entry) bool {
	for _, slot := range v.plan.userSlots {
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
	for _, slot := range u.v.plan.accountIDs {
		if r := u.e.row(slot); r != nil && r.AccountID != "" {
			return r.AccountID
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
	return lookup(u.e, u.v.plan.userAttrs[name])
}

// Account returns the user's account, if the user has one with data.
func (u User) Account() (Account, bool) {
	id := u.AccountID()
	if id == "" {
		return Account{}, false
	}
	e, ok := u.v.n.accounts[id]
	if !ok {
		// The account id is known even without account data: rules on
		// account.id still work.
		return Account{v: u.v, id: id, e: &emptyEntry}, true
	}
	return Account{v: u.v, id: id, e: e}, true
}

// emptyEntry stands for an account known by id only.
var emptyEntry entry

// Account is one merged account.
type Account struct {
	v  *View
	id string
	e  *entry
}

// ID is the account id.
func (a Account) ID() string { return a.id }

// Get returns an account attribute, as a CEL value (ref.Val), from the source of
// highest precedence that has a value for this account. Built-in: id.
func (a Account) Get(name string) (any, bool) {
	if name == attr.UserIDAttr {
		return types.String(a.id), true
	}
	return lookup(a.e, a.v.plan.accountAttrs[name])
}

func lookup(e *entry, cands []cand) (any, bool) {
	for _, c := range cands {
		if r := e.row(c.slot); r != nil && c.col < len(r.Values) && r.Values[c.col] != nil {
			return r.Values[c.col], true
		}
	}
	return nil, false
}

// Fields resolves attribute names once per view, so that reading an attribute of
// each of a million profiles is an index, not a map lookup by name.
type Fields struct {
	cands [][]cand
}

// Built-in pseudo slots in Fields.
const (
	builtinID        = -1
	builtinAccountID = -2
)

// UserFields resolves user attribute names (built-ins included) for User.Field.
func (v *View) UserFields(names []string) Fields {
	return v.fields(names, v.plan.userAttrs, true)
}

// AccountFields resolves account attribute names for Account.Field.
func (v *View) AccountFields(names []string) Fields {
	return v.fields(names, v.plan.accountAttrs, false)
}

func (v *View) fields(names []string, attrs map[string][]cand, user bool) Fields {
	f := Fields{cands: make([][]cand, len(names))}
	for i, n := range names {
		switch {
		case n == attr.UserIDAttr:
			f.cands[i] = []cand{{slot: builtinID}}
		case user && n == attr.AccountIDAttr:
			f.cands[i] = []cand{{slot: builtinAccountID}}
		default:
			f.cands[i] = attrs[n]
		}
	}
	return f
}

// Field returns the i-th resolved attribute of the user (a CEL value).
func (u User) Field(f *Fields, i int) (any, bool) {
	c := f.cands[i]
	if len(c) == 1 && c[0].slot < 0 {
		if c[0].slot == builtinID {
			return types.String(u.id), true
		}
		id := u.AccountID()
		return types.String(id), id != ""
	}
	return lookup(u.e, c)
}

// Field returns the i-th resolved attribute of the account (a CEL value).
func (a Account) Field(f *Fields, i int) (any, bool) {
	c := f.cands[i]
	if len(c) == 1 && c[0].slot == builtinID {
		return types.String(a.id), true
	}
	return lookup(a.e, c)
}

// DeclaredSchema is the schema that sources with these declarations would give
// (same precedence and conflict rules as the store), without any data: admission
// type-checks rules with it before anything is loaded.
func DeclaredSchema(sources []*SourceData) Schema {
	v := &View{plan: buildPlan(sources, nil)}
	return v.Schema()
}
