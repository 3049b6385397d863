package rule

import (
	"errors"
	"fmt"
	"sort"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// CEL type names of the objects: user, account, and an entry of user.playbooks.
const (
	UserTypeName        = "usersuccess.User"
	AccountTypeName     = "usersuccess.Account"
	playbookRunTypeName = "usersuccess.PlaybookRun"
)

// attrCELType is an attribute's CEL type. The built-in user.playbooks is a Map
// in the schema (so any reader of Schema can handle it) but, being the
// operator's own, has a known value type: entries are PlaybookRun objects.
func attrCELType(object, name string, t attr.Type) (*types.Type, error) {
	if object == UserTypeName && name == attr.PlaybooksAttr && t == attr.Map {
		return types.NewMapType(types.StringType, types.NewObjectType(playbookRunTypeName)), nil
	}
	return CELType(t)
}

// Schema is the attribute types of a namespace (profile.View.Schema).
type Schema = profile.Schema

// CELType maps an attribute type to its CEL type.
func CELType(t attr.Type) (*types.Type, error) {
	switch t {
	case attr.String:
		return types.StringType, nil
	case attr.Int:
		return types.IntType, nil
	case attr.Double:
		return types.DoubleType, nil
	case attr.Bool:
		return types.BoolType, nil
	case attr.Timestamp:
		return types.TimestampType, nil
	case attr.Duration:
		return types.DurationType, nil
	case attr.List:
		return types.NewListType(types.DynType), nil
	case attr.Map:
		return types.NewMapType(types.StringType, types.DynType), nil
	}
	return nil, fmt.Errorf("unknown attribute type %q", t)
}

// object is one of the two typed variables: its fields in a fixed order.
type object struct {
	typ    *types.Type
	names  []string
	fields map[string]*types.FieldType
}

// provider declares the User and Account object types to the CEL checker and
// planner, and defers everything else to the standard registry.
type provider struct {
	*types.Registry
	objects map[string]*object
}

func newProvider(s Schema) (*provider, error) {
	return newProviderWith(s,
		func(o any, i int, _ string) (any, bool) { return o.(*userRef).s.userField(i) },
		func(o any, i int, _ string) (any, bool) { return o.(*accountRef).s.accountField(i) })
}

// NewProvider is the rule language's type provider for a schema (the User,
// Account and PlaybookRun types), for an evaluator other than this package's:
// internal/explain evaluates one profile with CEL's plain planner, so its
// `user` and `account` values are its own, and user and account read an
// attribute of them by name. The types, and so what compiles, are this
// package's.
func NewProvider(s Schema, user, account func(obj any, name string) (any, bool)) (types.Provider, error) {
	return newProviderWith(s,
		func(o any, _ int, n string) (any, bool) { return user(o, n) },
		func(o any, _ int, n string) (any, bool) { return account(o, n) })
}

// getter reads field i (of the object's attributes in name order), named n.
type getter func(obj any, i int, n string) (any, bool)

func newProviderWith(s Schema, user, account getter) (*provider, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	p := &provider{Registry: reg, objects: map[string]*object{}}
	if err := p.add(UserTypeName, s.User, user); err != nil {
		return nil, err
	}
	if err := p.add(AccountTypeName, s.Account, account); err != nil {
		return nil, err
	}
	if err := p.addPlaybookRun(); err != nil {
		return nil, err
	}
	return p, nil
}

// addPlaybookRun declares the type of a user.playbooks entry. Its fields are
// read from the profile.PlaybookState the entry's Value is.
func (p *provider) addPlaybookRun() error {
	return p.add(playbookRunTypeName, profile.PlaybookStateFields, func(o any, _ int, n string) (any, bool) {
		st, ok := o.(profile.PlaybookState)
		if !ok {
			return nil, false
		}
		return st.Field(n)
	})
}

func (p *provider) add(name string, attrs map[string]attr.Type, get getter) error {
	o := &object{typ: types.NewObjectType(name), fields: map[string]*types.FieldType{}}
	for n := range attrs {
		o.names = append(o.names, n)
	}
	sort.Strings(o.names)
	for i, n := range o.names {
		t, err := attrCELType(name, n, attrs[n])
		if err != nil {
			return fmt.Errorf("%s.%s: %w", name, n, err)
		}
		o.fields[n] = &types.FieldType{
			Type:  t,
			IsSet: func(obj any) bool { _, ok := get(obj, i, n); return ok },
			GetFrom: func(obj any) (any, error) {
				if v, ok := get(obj, i, n); ok {
					return v, nil
				}
				return nil, missing{name: n}
			},
		}
	}
	p.objects[name] = o
	return nil
}

// missing is the evaluation error for an attribute a profile lacks.
type missing struct{ name string }

func (m missing) Error() string { return "no such attribute: " + m.name }

// IsMissing reports whether an evaluation error is the read of an attribute
// the profile lacks.
func IsMissing(err error) bool {
	var m missing
	return errors.As(err, &m)
}

// FindStructType implements types.Provider.
func (p *provider) FindStructType(name string) (*types.Type, bool) {
	if o, ok := p.objects[name]; ok {
		return types.NewTypeTypeWithParam(o.typ), true
	}
	return p.Registry.FindStructType(name)
}

// FindStructFieldNames implements types.Provider.
func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	if o, ok := p.objects[name]; ok {
		return o.names, true
	}
	return p.Registry.FindStructFieldNames(name)
}

// FindStructFieldType implements types.Provider.
func (p *provider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if o, ok := p.objects[name]; ok {
		ft, ok := o.fields[field]
		return ft, ok
	}
	return p.Registry.FindStructFieldType(name, field)
}

// NewValue implements types.Provider: user and account can't be constructed.
func (p *provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := p.objects[name]; ok {
		return types.NewErr("%s cannot be constructed in a rule", name)
	}
	return p.Registry.NewValue(name, fields)
}
