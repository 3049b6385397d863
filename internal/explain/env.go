package explain

import (
	"fmt"
	"sort"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"

	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// The environment below declares `user`, `account` and `now` exactly as
// internal/rule does (same type names, field types, options and extensions), so
// a rule type-checks the same way. It exists because internal/rule plans rules
// with fast paths that bypass CEL's interpreter nodes, and so records no
// per-expression state; explaining needs CEL's plain planner with state
// tracking. The verdict reported to users still comes from internal/rule.
const (
	userTypeName    = "usersuccess.User"
	accountTypeName = "usersuccess.Account"
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
	return cel.NewEnv(
		cel.CustomTypeProvider(prov),
		cel.Variable("user", cel.ObjectType(userTypeName)),
		cel.Variable("account", cel.ObjectType(accountTypeName)),
		cel.Variable("now", cel.TimestampType),
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(), ext.Sets(), ext.Lists(), ext.Math(),
		// Parser only: keeps macro calls (exists, all, has) so that their
		// sub-expressions can be printed back as written.
		cel.EnableMacroCallTracking(),
	)
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
		ct, err := celType(t)
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

// celType maps an attribute type to its CEL type, as internal/rule does.
func celType(t attr.Type) (*types.Type, error) {
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
