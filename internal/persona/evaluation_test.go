package persona

import (
	"errors"
	"strings"
	"testing"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/rule"
	"github.com/usersuccess/persona-operator/internal/sqlrule"
)

func pgSource(name, secret string, entity v1alpha1.Entity, attrs ...v1alpha1.AttributeMapping) v1alpha1.DataSource {
	ds := v1alpha1.DataSource{Spec: v1alpha1.DataSourceSpec{Type: v1alpha1.DataSourcePostgreSQL, Entity: entity,
		Postgres:   &v1alpha1.PostgresSource{DSNSecretRef: v1alpha1.SecretKeySelector{Name: secret, Key: "dsn"}, Query: "SELECT * FROM " + name},
		Attributes: attrs}}
	ds.Name = name
	if entity == v1alpha1.EntityAccount {
		ds.Spec.Key.AccountID = "id"
	}
	return ds
}

func TestChooseEvaluation(t *testing.T) {
	users := pgSource("users", "db", v1alpha1.EntityUser,
		v1alpha1.AttributeMapping{Name: "nps", Type: v1alpha1.TypeInt}, v1alpha1.AttributeMapping{Name: "role", Type: v1alpha1.TypeString})
	accounts := pgSource("accounts", "db", v1alpha1.EntityAccount, v1alpha1.AttributeMapping{Name: "tier", Type: v1alpha1.TypeString})
	otherDB := pgSource("accounts", "other", v1alpha1.EntityAccount, v1alpha1.AttributeMapping{Name: "tier", Type: v1alpha1.TypeString})
	inline := users
	inline.Spec.Type, inline.Spec.Postgres = v1alpha1.DataSourceInline, nil
	for _, c := range []struct {
		name     string
		mode     v1alpha1.EvaluationMode
		rule     string
		insights bool
		sources  []v1alpha1.DataSource
		reason   string
		err      bool
		position bool
		want     v1alpha1.EvaluationMode
	}{
		{name: "default", rule: "user.nps <= 6", sources: []v1alpha1.DataSource{inline}, reason: "spec.evaluation is InMemory"},
		{name: "database", mode: v1alpha1.EvaluationDatabase, rule: `user.nps <= 6 && account.tier == "x"`,
			sources: []v1alpha1.DataSource{users, accounts}, reason: "translates to SQL exactly", want: v1alpha1.EvaluationDatabase},
		{name: "auto in the database", mode: v1alpha1.EvaluationAuto, rule: `user.nps <= 6`,
			sources: []v1alpha1.DataSource{users}, reason: "Auto: the rule translates to SQL exactly", want: v1alpha1.EvaluationDatabase},
		{name: "untranslatable", mode: v1alpha1.EvaluationDatabase, rule: `user.role.matches("a+")`,
			sources: []v1alpha1.DataSource{users}, reason: "1:1: user.role.matches(\"a+\"): CEL regular expressions are RE2", err: true, position: true},
		{name: "auto falls back", mode: v1alpha1.EvaluationAuto, rule: `user.role.matches("a+")`,
			sources: []v1alpha1.DataSource{users}, reason: "Auto: cannot be evaluated in the database: 1:1"},
		{name: "inline source", mode: v1alpha1.EvaluationDatabase, rule: "user.nps <= 6",
			sources: []v1alpha1.DataSource{inline}, reason: "not a PostgreSQL source", err: true},
		{name: "two databases", mode: v1alpha1.EvaluationDatabase, rule: "user.nps <= 6",
			sources: []v1alpha1.DataSource{users, otherDB}, reason: "reads another database", err: true},
		{name: "insights", mode: v1alpha1.EvaluationDatabase, rule: "user.nps <= 6", insights: true,
			sources: []v1alpha1.DataSource{users}, reason: "translates to SQL exactly", want: v1alpha1.EvaluationDatabase},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := &v1alpha1.PersonaSpec{Rule: c.rule, Evaluation: c.mode}
			if c.insights {
				spec.Insights = []v1alpha1.InsightSpec{{Name: "n", Type: v1alpha1.InsightSum, Expression: "user.nps"}}
			}
			decls := make([]*profile.SourceData, 0, len(c.sources))
			for i := range c.sources {
				d, err := profile.Declared(&c.sources[i])
				if err != nil {
					t.Fatal(err)
				}
				decls = append(decls, d)
			}
			p, err := rule.Compile(c.rule, profile.DeclaredSchema(decls))
			if err != nil {
				t.Fatal(err)
			}
			st, err := ChooseEvaluation(spec, p, c.sources)
			if (err != nil) != c.err {
				t.Fatalf("error %v, want one: %v", err, c.err)
			}
			var r *sqlrule.Refusal
			if c.position && (!errors.As(err, &r) || r.Line != 1 || r.Column != 1) {
				t.Fatalf("want a refusal with the position, got %v", err)
			}
			want := c.want
			if want == "" {
				want = v1alpha1.EvaluationInMemory
			}
			if st.Mode != want || !strings.Contains(st.Reason, c.reason) {
				t.Fatalf("status %+v, want %s and a reason with %q", st, want, c.reason)
			}
		})
	}
}
