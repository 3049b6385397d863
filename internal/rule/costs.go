package rule

import (
	"strings"

	"github.com/google/cel-go/common/ast"
)

// Runtime cost. The compile-time estimate assumes strings of at most
// maxStringSize bytes and lists of at most maxListSize elements, which record
// values may exceed. Every program is cost-tracked at runtime (cel.CostLimit:
// an evaluation over CostLimit fails, and the profile counts as an evaluation
// error), except the programs whose cost cannot outgrow the estimate by more
// than the size of the values they read: no comprehension (each call then runs
// at most once per evaluation) and only calls from boundedCalls, which take
// time linear in their operands and build at most a value the size of one of
// them (a scalar, a lower-cased copy): such an evaluation allocates at most
// the size of the values it reads times the number of its calls. Those
// are the rules that keep the fast paths (fast.go, table.go): tracking costs a
// tracker per evaluation and an observer per step, and rules such as
// `account.tier == "enterprise" && user.nps <= 6` have nothing it could stop.
// The size guards (guards.go) apply to every program, tracked or not.

// boundedCalls are overload ids, or prefixes of them (ending in "_"), of
// functions that read their operands once and build at most a value the size
// of one operand. Concatenation (add_string, add_bytes, add_list: the sum of
// the operands), matches (unless its pattern is a literal), the guarded
// amplifiers (guards.go) and the list and set extensions are absent: they are
// tracked.
var boundedCalls = []string{
	"conditional", "logical_", "not_strictly_false", "equals", "not_equals",
	"less_", "greater_",
	"add_int64", "add_uint64", "add_double", "add_timestamp_duration", "add_duration_",
	"subtract_", "multiply_", "divide_", "modulo_", "negate_",
	"index_list", "index_map", "in_list", "in_map",
	"size_", "string_size", "bytes_size", "list_size", "map_size",
	"contains_string", "starts_with_string", "ends_with_string",
	"string_lower_ascii", "string_upper_ascii", "string_trim", "string_reverse", "string_substring_",
	"string_char_at_int", "string_index_of_", "string_last_index_of_",
	"timestamp_to_", "duration_to_", "int64_to_", "uint64_to_", "double_to_", "bool_to_",
	"string_to_int64", "string_to_uint64", "string_to_double", "string_to_bool",
	"string_to_timestamp", "string_to_duration", "string_to_string",
	"type", "to_dyn",
}

func bounded(overload string) bool {
	for _, b := range boundedCalls {
		if overload == b || strings.HasSuffix(b, "_") && strings.HasPrefix(overload, b) {
			return true
		}
	}
	return false
}

// needsCostTracking reports whether a checked expression must be cost-tracked
// at runtime: it iterates, or it calls a function outside boundedCalls (or one
// the checker could not resolve to overloads).
func needsCostTracking(checked *ast.AST) bool {
	if hasComprehension(checked.Expr()) {
		return true
	}
	tracked := false
	visit(checked.Expr(), func(e ast.Expr) {
		if e.Kind() != ast.CallKind || tracked {
			return
		}
		ids := checked.GetOverloadIDs(e.ID())
		if len(ids) == 0 {
			tracked = true
		}
		for _, id := range ids {
			if !bounded(id) && !constantPattern(e, id) {
				tracked = true
			}
		}
	})
	return tracked
}

// constantPattern reports whether e is a matches call with a literal pattern:
// CEL compiles it once with the program, and RE2 matches in time linear in
// the value without building anything from it. A pattern computed from data
// is compiled per evaluation: tracked.
func constantPattern(e ast.Expr, overload string) bool {
	if overload != "matches_string" && overload != "matches" {
		return false
	}
	args := e.AsCall().Args()
	if len(args) == 0 {
		return false
	}
	return args[len(args)-1].Kind() == ast.LiteralKind
}
