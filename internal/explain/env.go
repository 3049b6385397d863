package explain

import (
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/rule"
)

// The environment declares `user`, `account` and `now` with internal/rule's
// language (rule.Language: variables, options, extensions) and its type
// provider (rule.NewProvider: the same User, Account and PlaybookRun types),
// so a rule type-checks the same way. Only the values are this package's:
// internal/rule plans rules with fast paths that bypass CEL's interpreter
// nodes and read dense snapshot columns, and so records no per-expression
// state; explaining needs CEL's plain planner with state tracking over one
// profile's values. The verdict reported to users still comes from
// internal/rule.

// costLimit bounds one exhaustive evaluation: exhaustive evaluation visits every
// branch, so it may cost more than the controller's short-circuiting one.
const costLimit = 10_000_000

// object is the value of `user` or `account` during an explanation: attribute
// values by name (nil map: no account).
type object struct{ vals map[string]ref.Val }

func newEnv(s profile.Schema) (*cel.Env, error) {
	prov, err := rule.NewProvider(s, field, field)
	if err != nil {
		return nil, err
	}
	opts := append([]cel.EnvOption{cel.CustomTypeProvider(prov)}, rule.Language()...)
	// Parser only: keeps macro calls (exists, all, has) so that their
	// sub-expressions can be printed back as written.
	return cel.NewEnv(append(opts, cel.EnableMacroCallTracking())...)
}

// field reads an attribute of an object; absent when the profile lacks it.
func field(obj any, name string) (any, bool) {
	o, ok := obj.(*object)
	if !ok || o == nil {
		return nil, false
	}
	v, ok := o.vals[name]
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}
