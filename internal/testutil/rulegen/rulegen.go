// Package rulegen generates random well-typed Persona rules for tests that
// compare two evaluations of the same rule: the fast paths against CEL's plan
// (internal/rule), SQL against memory (internal/sqlrule). A rule is a pure
// function of its input bytes, so a fuzzer can drive it.
//
// Rules read the attributes of the schema both tests declare: user.role,
// user.nps, user.score, user.lastLogin, user.tenure, user.active,
// user.features (a list of strings), account.tier, account.arr,
// account.renewalDate, account.seats; with Signals, also user.tickets (a list
// of records with priority and opened).
package rulegen

// Generator builds one rule from its input.
type Generator struct {
	data []byte
	pos  int
	// Signals adds clauses over user.tickets.
	Signals bool
	// Extreme adds constants at the ends of their ranges (years 1 and 9999,
	// the longest duration, the largest ints), whose arithmetic overflows.
	Extreme bool
}

// New returns a generator reading data.
func New(data []byte) *Generator { return &Generator{data: data} }

// Rule generates a rule of nesting depth 3 (the first call; later calls
// continue from the input where the last stopped).
func (g *Generator) Rule() string { return g.boolean(3) }

// Rule is New(data).Rule(): a rule without extreme constants or signals.
func Rule(data []byte) string { return New(data).Rule() }

func (g *Generator) next(n int) int {
	if g.pos >= len(g.data) {
		return 0
	}
	b := g.data[g.pos]
	g.pos++
	return int(b) % n
}

func (g *Generator) oneOf(s ...string) string { return s[g.next(len(s))] }

// leaf picks one of the values, or of the extreme ones too with Extreme.
func (g *Generator) leaf(values []string, extreme ...string) string {
	if g.Extreme {
		values = append(values[:len(values):len(values)], extreme...)
	}
	return g.oneOf(values...)
}

func (g *Generator) boolean(depth int) string {
	if depth <= 0 {
		return g.compare(0)
	}
	switch g.next(10) {
	case 0:
		return g.boolean(depth-1) + " && " + g.boolean(depth-1)
	case 1:
		return "(" + g.boolean(depth-1) + " || " + g.boolean(depth-1) + ")"
	case 2:
		return "!(" + g.boolean(depth-1) + ")"
	case 3:
		return "(" + g.boolean(depth-1) + " ? " + g.boolean(depth-1) + " : " + g.boolean(depth-1) + ")"
	case 4:
		return "has(" + g.oneOf("user.nps", "user.role", "user.lastLogin", "user.tenure", "account.tier",
			"account.renewalDate", "user.features", "user.score", "user.active", "account.seats") + ")"
	case 5:
		return g.list()
	default:
		return g.compare(depth - 1)
	}
}

func (g *Generator) op() string { return g.oneOf("<", "<=", ">", ">=", "==", "!=") }

func (g *Generator) compare(depth int) string {
	switch g.next(10) {
	case 0:
		return g.str() + " " + g.op() + " " + g.str()
	case 9:
		return g.oneOf(Refused...)
	case 1:
		return g.integer(depth) + " " + g.op() + " " + g.integer(depth)
	case 2:
		return g.timestamp(depth) + " " + g.op() + " " + g.timestamp(depth)
	case 3:
		return g.duration(depth) + " " + g.op() + " " + g.duration(depth)
	case 4:
		return g.oneOf("user.score", "account.arr", "5.5", "dyn(user.nps)") + " " + g.op() + " " +
			g.oneOf("user.score", "account.arr", "user.nps", "0.0", "-0.0", "6", "1e300")
	case 5:
		return g.str() + " in " + g.oneOf(`["champion", "smb"]`, `[]`, `["enterprise"]`, `["é", ""]`)
	case 6:
		return g.oneOf("user.active", "!user.active", "user.active == (user.nps > 5)", "user.active != false")
	case 7:
		return g.str() + "." + g.oneOf("startsWith", "endsWith", "contains") + "(" + g.oneOf(`"c"`, `""`, `"é"`, `"er"`) + ")"
	default:
		return "size(" + g.str() + ") " + g.op() + " " + g.oneOf("0", "5", "8")
	}
}

// list is a clause over a list attribute.
func (g *Generator) list() string {
	n := 5
	if g.Signals {
		n = 8
	}
	switch g.next(n) {
	case 0:
		return g.str() + " in user.features"
	case 1:
		return "size(user.features) " + g.op() + " " + g.oneOf("0", "1", "2")
	case 2:
		return "user.features.exists(f, f " + g.op() + " " + g.str() + ")"
	case 3:
		return "user.features.all(f, f " + g.op() + " " + g.oneOf(`"m"`, `"sso"`, "user.role") + ")"
	case 4:
		return "user.features.exists(f, f.startsWith(" + g.oneOf(`"s"`, `"é"`) + ") && " + g.boolean(0) + ")"
	case 5:
		return "has(user.tickets)"
	case 6:
		return "user.tickets.exists(t, " + g.oneOf("t.priority == \"high\"", "has(t.opened) && t.opened > now - duration(\"720h\")",
			"t.priority < user.role", "t.opened < account.renewalDate") + ")"
	default:
		return "user.tickets.all(t, " + g.oneOf("has(t.priority)", "t.priority != \"low\"", "t.opened <= now") + ")"
	}
}

func (g *Generator) str() string {
	return g.oneOf("user.role", "account.tier", `"champion"`, `"enterprise"`, "account.id", "user.accountId",
		`"é"`, `"日本"`, `""`, `"Z"`)
}

func (g *Generator) integer(depth int) string {
	if depth > 0 {
		switch g.next(6) {
		case 0:
			return "(" + g.integer(depth-1) + " + " + g.integer(depth-1) + ")"
		case 1:
			return "(" + g.integer(depth-1) + " - " + g.integer(depth-1) + ")"
		case 2:
			return "(" + g.integer(depth-1) + " * " + g.integer(depth-1) + ")"
		case 3:
			return "(" + g.integer(depth-1) + " / " + g.integer(depth-1) + ")"
		}
	}
	return g.leaf([]string{"user.nps", "account.seats", "6", "0", "-1", "size(user.features)"},
		"9223372036854775807", "-9223372036854775807")
}

func (g *Generator) timestamp(depth int) string {
	if depth > 0 {
		switch g.next(4) {
		case 0:
			return "(" + g.timestamp(depth-1) + " + " + g.duration(depth-1) + ")"
		case 1:
			return "(" + g.timestamp(depth-1) + " - " + g.duration(depth-1) + ")"
		case 2:
			return "(" + g.duration(depth-1) + " + " + g.timestamp(depth-1) + ")"
		}
	}
	return g.leaf([]string{"user.lastLogin", "account.renewalDate", "now", `timestamp("2027-01-01T00:00:00Z")`},
		`timestamp("0001-01-01T00:00:00Z")`, `timestamp("9999-12-31T23:59:59.999999999Z")`)
}

func (g *Generator) duration(depth int) string {
	if depth > 0 {
		switch g.next(4) {
		case 0:
			return "(" + g.timestamp(depth-1) + " - " + g.timestamp(depth-1) + ")"
		case 1:
			return "(" + g.duration(depth-1) + " + " + g.duration(depth-1) + ")"
		case 2:
			return "(" + g.duration(depth-1) + " - " + g.duration(depth-1) + ")"
		}
	}
	return g.leaf([]string{"user.tenure", `duration("2160h")`, `duration("0s")`, `duration("-720h")`},
		`duration("2562047h47m16.854775807s")`)
}

// Refused are clauses outside what internal/sqlrule translates exactly
// (regular expressions, double arithmetic, conversions, modulo), which it
// must refuse rather than mistranslate.
var Refused = []string{
	`user.role.matches("^c")`,
	`user.score * 2.0 > 1.0`,
	`string(user.nps) == "6"`,
	`int(user.score) > 3`,
	`user.nps % 2 == 0`,
}
