package sqlrule_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/rule"
	"github.com/usersuccess/persona-operator/internal/sqlrule"
	"github.com/usersuccess/persona-operator/internal/testutil/rulegen"
)

// declared are the differential test's sources with the column types its
// tables have, without a database.
func declared(t testing.TB) ([]sqlrule.Source, profile.Schema) {
	t.Helper()
	cols := map[string]map[string]string{
		"crm": {"id": "text", "account": "text", "role": "text", "nps": "int8", "score": "float8",
			"last_login": "timestamptz", "tenure": "interval", "active": "bool"},
		"legacy":   {"uid": "varchar", "acct": "text", "nps": "int4", "role": "varchar", "score": "float4", "plan": "text", "seen": "timestamp"},
		"billing":  {"id": "int8", "nps": "int8"},
		"accounts": {"id": "text", "tier": "text", "arr": "float8", "renewal": "timestamptz", "seats": "int8"},
		"features": {"user_id": "text", "feature": "text"},
		"tickets":  {"user_id": "text", "priority": "text", "opened": "date"},
	}
	all := sources()
	out := make([]sqlrule.Source, 0, len(all))
	data := make([]*profile.SourceData, 0, len(all))
	for _, ds := range all {
		d, err := profile.Declared(&ds)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, d)
		out = append(out, sqlrule.Source{Name: ds.Name, Spec: ds.Spec, Columns: cols[ds.Name]})
	}
	return out, profile.DeclaredSchema(data)
}

func TestRefusalsSayWhereAndWhy(t *testing.T) {
	srcs, schema := declared(t)
	for _, c := range []struct {
		rule         string
		line, column int
		expr, reason string
	}{
		{`user.nps > 5 && user.role.matches("^c")`, 1, 17, `user.role.matches("^c")`, "RE2"},
		{"user.nps > 5 &&\n  user.score * 2.0 > 1.0", 2, 3, `user.score * 2.0`, "double arithmetic"},
		{`string(user.nps) == "6"`, 1, 1, `string(user.nps)`, "function string"},
		{`user.nps % 2 == 0`, 1, 1, `user.nps % 2`, "operator %"},
		{`"é" in user.tickets`, 1, 1, `"é" in user.tickets`, "signal records"},
		{`"x" == "a\u0000"`, 1, 8, `"a\u0000"`, "NUL"},
		{`[1, 2].exists(x, x == user.nps)`, 1, 1, `[1, 2]`, "Signal source's list only"},
	} {
		p, err := rule.Compile(c.rule, schema)
		if err != nil {
			t.Fatalf("%s: %v", c.rule, err)
		}
		_, err = sqlrule.Translate(p, srcs, sqlrule.PostgreSQL{})
		var r *sqlrule.Refusal
		if !errors.As(err, &r) {
			t.Fatalf("%s: want a refusal, got %v", c.rule, err)
		}
		if r.Line != c.line || r.Column != c.column || r.Expr != c.expr || !strings.Contains(r.Reason, c.reason) {
			t.Errorf("%s: refusal %d:%d %q %q, want %d:%d %q ...%s...", c.rule, r.Line, r.Column, r.Expr, r.Reason, c.line, c.column, c.expr, c.reason)
		}
		if err := sqlrule.Check(p, srcs); err == nil || err.Error() != r.Error() {
			t.Errorf("%s: Check says %v, Translate %v", c.rule, err, r)
		}
	}
}

func TestSourcesThatCannotBeTranslated(t *testing.T) {
	_, schema := declared(t)
	for name, change := range map[string]func(s []sqlrule.Source){
		"an attribute computed by an expression": func(s []sqlrule.Source) {
			s[0].Spec.Attributes[0].Expression = `record.role + "x"`
		},
		"a numeric user id": func(s []sqlrule.Source) { s[0].Columns["id"] = "numeric" },
		"a column of a type that may not convert": func(s []sqlrule.Source) {
			s[0].Columns["nps"] = "text" // "abc" would reject the record in memory
		},
		"an account attribute on user records": func(s []sqlrule.Source) {
			s[0].Spec.Attributes = append(s[0].Spec.Attributes, v1alpha1.AttributeMapping{Name: "tier", Type: v1alpha1.TypeString, Entity: v1alpha1.EntityAccount})
		},
		"a source that is not PostgreSQL": func(s []sqlrule.Source) { s[0].Spec.Postgres = nil },
	} {
		srcs, _ := declared(t)
		change(srcs)
		p, err := rule.Compile(`user.role == "x" && account.tier == "enterprise"`, schema)
		if err != nil {
			t.Fatal(err)
		}
		_, err = sqlrule.Translate(p, srcs, sqlrule.PostgreSQL{})
		var r *sqlrule.Refusal
		if !errors.As(err, &r) || r.Reason == "" {
			t.Errorf("%s: want a refusal, got %v", name, err)
		}
	}
}

// FuzzTranslate: any generated rule translates or is refused, never panics,
// and every bound parameter appears in the SQL (an unused one fails the
// query in PostgreSQL); Check agrees with Translate.
func FuzzTranslate(f *testing.F) {
	for _, seed := range []string{"\x00\x00\x02\x03", "\x05\x02\x00\x01\x02\x03", "\x09\x05\x03\x00\x01", "\x05\x06\x07\x08"} {
		f.Add([]byte(seed))
	}
	srcs, schema := declared(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		g := rulegen.New(data)
		g.Signals, g.Extreme = true, true
		expr := g.Rule()
		p, err := rule.Compile(expr, schema)
		if err != nil {
			t.Skip(err)
		}
		q, err := sqlrule.Translate(p, srcs, sqlrule.PostgreSQL{})
		if checkErr := sqlrule.Check(p, srcs); (checkErr == nil) != (err == nil) {
			t.Fatalf("%s: Check %v, Translate %v", expr, checkErr, err)
		}
		if err != nil {
			var r *sqlrule.Refusal
			if !errors.As(err, &r) || r.Reason == "" {
				t.Fatalf("%s: %v is not a refusal", expr, err)
			}
			return
		}
		args := q.Args(now)
		for i := range args {
			if !strings.Contains(q.SQL, fmt.Sprintf("$%d::", i+1)) {
				t.Fatalf("%s: parameter %d is not in the SQL:\n%s", expr, i+1, q.SQL)
			}
		}
	})
}

// An array column mapped to a List attribute keeps no record out (the
// connector decodes every array to a list): a rule that does not read it
// translates; one that reads it is refused with the reason.
func TestArrayColumnNotRead(t *testing.T) {
	srcs, _ := declared(t)
	srcs[0].Spec.Attributes = append(srcs[0].Spec.Attributes, v1alpha1.AttributeMapping{Name: "tags", Type: v1alpha1.TypeList})
	srcs[0].Columns["tags"] = "_text"
	var data []*profile.SourceData
	for _, s := range srcs {
		ds := v1alpha1.DataSource{Spec: s.Spec}
		ds.Name = s.Name
		d, err := profile.Declared(&ds)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, d)
	}
	schema := profile.DeclaredSchema(data)
	for expr, refused := range map[string]bool{`user.role == "x"`: false, `size(user.tags) > 0`: true} {
		p, err := rule.Compile(expr, schema)
		if err != nil {
			t.Fatal(err)
		}
		_, err = sqlrule.Translate(p, srcs, sqlrule.PostgreSQL{})
		if refused != (err != nil) {
			t.Errorf("%s: Translate error %v, want refused %v", expr, err, refused)
		}
		if err != nil && !strings.Contains(err.Error(), "a list from a column") {
			t.Errorf("%s: %v does not say why", expr, err)
		}
	}
}
