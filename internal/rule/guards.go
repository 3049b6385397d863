package rule

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/decls"
	"github.com/google/cel-go/common/functions"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
)

// MaxResultBytes bounds the value one call of a function that builds a string
// or list larger than its operands (replace, split, join, format, quote) may
// build. CEL's runtime cost tracker charges a call after it returns, so
// without this check `user.role.replace("a", <64 a's>)` over a 4 MiB value
// would allocate 256 MiB before any limit could stop it; with it the call
// fails first, as an evaluation error of that profile.
const MaxResultBytes = 8 << 20

// listElemBytes is what one element of a list of strings costs beyond its
// bytes: the string header and the CEL value boxing it.
const listElemBytes = 32

// guard is an overload whose result size is known from its arguments before
// it runs.
type guard struct {
	function, overload string
	size               func(args []ref.Val) uint64
}

var guards = []guard{
	{"replace", "string_replace_string_string", replaceSize},
	{"replace", "string_replace_string_string_int", replaceSize},
	{"split", "string_split_string", splitSize},
	{"split", "string_split_string_int", splitSize},
	{"join", "list_join", joinSize},
	{"join", "list_join_string", joinSize},
	{"format", "string_format", formatSize},
	{"strings.quote", "strings_quote", quoteSize},
}

// extensions are the CEL extension libraries of the rule language.
// (lists.range needs no guard: the compile-time estimate rejects any argument
// but a small constant.)
func extensions() []cel.EnvOption {
	return []cel.EnvOption{ext.Strings(), ext.Sets(), ext.Lists(), ext.Math()}
}

var (
	guardsOnce sync.Once
	guardsOpt  cel.EnvOption
)

// sizeGuards redefines the guarded overloads of the extensions with the same
// signature and implementation, preceded by the size check. CEL lets an
// overload's implementation be redefined when its signature is unchanged.
func sizeGuards() cel.EnvOption {
	guardsOnce.Do(func() { guardsOpt = buildGuards() })
	return guardsOpt
}

func buildGuards() cel.EnvOption {
	env, err := cel.NewEnv(extensions()...)
	if err != nil {
		return envError(err)
	}
	fns := env.Functions()
	var opts []cel.EnvOption
	for _, g := range guards {
		fn, ok := fns[g.function]
		if !ok {
			return envError(fmt.Errorf("guarded function %s is not declared", g.function))
		}
		impl, decl := binding(fn.Bindings, g.overload), overloadDecl(fn.OverloadDecls(), g.overload)
		if impl == nil || decl == nil {
			return envError(fmt.Errorf("guarded overload %s is not declared", g.overload))
		}
		newOverload := cel.Overload
		if decl.IsMemberFunction() {
			newOverload = cel.MemberOverload
		}
		opts = append(opts, cel.Function(g.function,
			newOverload(g.overload, decl.ArgTypes(), decl.ResultType(), cel.FunctionBinding(guarded(g, impl)))))
	}
	return func(e *cel.Env) (*cel.Env, error) {
		for _, o := range opts {
			var err error
			if e, err = o(e); err != nil {
				return nil, err
			}
		}
		return e, nil
	}
}

func envError(err error) cel.EnvOption {
	return func(*cel.Env) (*cel.Env, error) { return nil, fmt.Errorf("rule language size guards: %w", err) }
}

func overloadDecl(all []*decls.OverloadDecl, id string) *decls.OverloadDecl {
	for _, d := range all {
		if d.ID() == id {
			return d
		}
	}
	return nil
}

func binding(bindings func() ([]*functions.Overload, error), id string) *functions.Overload {
	all, err := bindings()
	if err != nil {
		return nil
	}
	for _, o := range all {
		if o.Operator == id {
			return o
		}
	}
	return nil
}

// guarded checks the result size, then calls the original implementation.
func guarded(g guard, impl *functions.Overload) functions.FunctionOp {
	return func(args ...ref.Val) ref.Val {
		if n := g.size(args); n > MaxResultBytes {
			return types.NewErr("%s would build a value of about %d bytes, over the limit of %d bytes per value", g.function, n, MaxResultBytes)
		}
		switch {
		case len(args) == 1 && impl.Unary != nil:
			return impl.Unary(args[0])
		case len(args) == 2 && impl.Binary != nil:
			return impl.Binary(args[0], args[1])
		case impl.Function != nil:
			return impl.Function(args...)
		}
		return types.NewErr("no implementation of %s", g.overload)
	}
}

func str(v ref.Val) string {
	s, _ := v.(types.String)
	return string(s)
}

// replaceSize is the exact length of the result (the count of replacements,
// limited by the optional n, times the growth of each).
func replaceSize(args []ref.Val) uint64 {
	s, old, repl := str(args[0]), str(args[1]), str(args[2])
	count := uint64(strings.Count(s, old)) // an empty old matches len(runes)+1 times
	if len(args) > 3 {
		if n, ok := args[3].(types.Int); ok && n >= 0 && uint64(n) < count {
			count = uint64(n)
		}
	}
	if len(repl) <= len(old) {
		return uint64(len(s))
	}
	return uint64(len(s)) + count*uint64(len(repl)-len(old))
}

// splitSize is the bytes of the parts plus their boxing.
func splitSize(args []ref.Val) uint64 {
	s, sep := str(args[0]), str(args[1])
	parts := uint64(strings.Count(s, sep)) + 1
	if sep == "" {
		parts = uint64(utf8.RuneCountInString(s))
	}
	if len(args) > 2 {
		if n, ok := args[2].(types.Int); ok && n >= 0 && uint64(n) < parts {
			parts = uint64(n)
		}
	}
	return uint64(len(s)) + parts*listElemBytes
}

func joinSize(args []ref.Val) uint64 {
	l, ok := args[0].(traits.Lister)
	if !ok {
		return 0
	}
	var sep uint64
	if len(args) > 1 {
		sep = uint64(len(str(args[1])))
	}
	var n uint64
	for it := l.Iterator(); it.HasNext() == types.True; {
		n += uint64(len(str(it.Next()))) + sep
		if n > MaxResultBytes {
			break
		}
	}
	return n
}

// formatSize bounds the result: the format string plus each argument printed
// at its largest (a quoted string escapes each byte to at most 6, a number
// prints in at most 512 bytes at the largest precision).
func formatSize(args []ref.Val) uint64 {
	n := uint64(len(str(args[0])))
	if l, ok := args[1].(traits.Lister); ok {
		n += printedSize(l, 0)
	}
	return n
}

func printedSize(v ref.Val, depth int) uint64 {
	switch x := v.(type) {
	case types.String:
		return 6*uint64(len(x)) + 2
	case types.Bytes:
		return 6*uint64(len(x)) + 3
	case traits.Lister:
		n := uint64(2)
		for it := x.Iterator(); it.HasNext() == types.True && n <= MaxResultBytes; {
			n += printedSize(it.Next(), depth+1) + 2
		}
		return n
	case traits.Mapper:
		n := uint64(2)
		for it := x.Iterator(); it.HasNext() == types.True && n <= MaxResultBytes; {
			k := it.Next()
			n += printedSize(k, depth+1) + printedSize(x.Get(k), depth+1) + 4
		}
		return n
	}
	return 512
}

func quoteSize(args []ref.Val) uint64 { return 6*uint64(len(str(args[0]))) + 2 }
