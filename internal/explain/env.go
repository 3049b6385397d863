package explain

import (
	"fmt"
	"sort"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/rule"
)

// The environment below declares `user`, `account` and `now` with
// internal/rule's language (rule.Language: variables, options, extensions)
// and its attribute types (rule.CELType), so a rule type-checks the same way.
// Only the type provider is its own: internal/rule plans rules with fast paths
// that bypass CEL's interpreter nodes and read dense snapshot columns, and so
// records no per-expression state; explaining needs CEL's plain planner with
// state tracking over one profile's values. The verdict reported to users
// still comes from internal/rule. user.playbooks entries are plain CEL maps
// here (the store's values are), so they read as dyn.
const (
	userTypeName    = rule.UserTypeName
	accountTypeName = rule.AccountTypeName
)

// costLimit bounds one exhaustive evaluation: exhaustive evaluation visits every
// branch, so it may cost more than the controller's short-circuiting one.
const costLimit = 10_000_000

// object is the value of `user` or `account` during an explanation: attribute
// values by name (nil map: no account).
type object struct{ vals map[string]ref.Val }

// missing is the evaluation error of an attribute the profile lacks.
type missing struct{ name string }

func (m missing) Error() string { return "no such attribute: " + m.name }

func newEnv(s profile.Schema) (*cel.Env, error) {
	prov, err := newProvider(s)
	if err != nil {
		return nil, err
	}
	opts := append([]cel.EnvOption{cel.CustomTypeProvider(prov)}, rule.Language()...)
	// Parser only: keeps macro calls (exists, all, has) so that their
	// sub-expressions can be printed back as written.
	return cel.NewEnv(append(opts, cel.EnableMacroCallTracking())...)
}

// provider declares the two object types and defers the rest to CEL's registry.
type provider struct {
	*types.Registry
	fields map[string]map[string]*types.FieldType
	names  map[string][]string
}

func newProvider(s profile.Schema) (*provider, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	p := &provider{Registry: reg, fields: map[string]map[string]*types.FieldType{}, names: map[string][]string{}}
	if err := p.add(userTypeName, s.User); err != nil {
		return nil, err
	}
	if err := p.add(accountTypeName, s.Account); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *provider) add(name string, attrs map[string]attr.Type) error {
	fields := map[string]*types.FieldType{}
	var names []string
	for n, t := range attrs {
		ct, err := rule.CELType(t)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", name, n, err)
		}
		fields[n] = &types.FieldType{
			Type:  ct,
			IsSet: func(obj any) bool { _, ok := lookup(obj, n); return ok },
			GetFrom: func(obj any) (any, error) {
				if v, ok := lookup(obj, n); ok {
					return v, nil
				}
				return nil, missing{name: n}
			},
		}
		names = append(names, n)
	}
	sort.Strings(names)
	p.fields[name], p.names[name] = fields, names
	return nil
}

func lookup(obj any, name string) (ref.Val, bool) {
	o, ok := obj.(*object)
	if !ok || o == nil {
		return nil, false
	}
	v, ok := o.vals[name]
	return v, ok && v != nil
}

// FindStructType implements types.Provider.
func (p *provider) FindStructType(name string) (*types.Type, bool) {
	if _, ok := p.fields[name]; ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return p.Registry.FindStructType(name)
}

// FindStructFieldNames implements types.Provider.
func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	if n, ok := p.names[name]; ok {
		return n, true
	}
	return p.Registry.FindStructFieldNames(name)
}

// FindStructFieldType implements types.Provider.
func (p *provider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if f, ok := p.fields[name]; ok {
		ft, ok := f[field]
		return ft, ok
	}
	return p.Registry.FindStructFieldType(name, field)
}

// NewValue implements types.Provider: user and account can't be constructed.
func (p *provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := p.fields[name]; ok {
		return types.NewErr("%s cannot be constructed in a rule", name)
	}
	return p.Registry.NewValue(name, fields)
}
