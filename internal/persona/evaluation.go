package persona

import (
	"fmt"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/rule"
	"github.com/usersuccess/persona-operator/internal/sqlrule"
)

// ChooseEvaluation decides where a persona's rule is evaluated, from
// spec.evaluation and whether the rule can be evaluated in the database its
// DataSources (of the namespace's sources, those it reads) read. The error says why
// not, for spec.evaluation Database: the webhook rejects the persona with it
// (a *sqlrule.Refusal carries the rule's position).
func ChooseEvaluation(spec *v1alpha1.PersonaSpec, p *rule.Program, sources []v1alpha1.DataSource) (v1alpha1.EvaluationStatus, error) {
	mode := spec.Evaluation
	if mode == "" || mode == v1alpha1.EvaluationInMemory {
		return v1alpha1.EvaluationStatus{Mode: v1alpha1.EvaluationInMemory, Reason: "spec.evaluation is InMemory"}, nil
	}
	if err := InDatabase(spec, p, sources); err != nil {
		if mode == v1alpha1.EvaluationDatabase {
			return v1alpha1.EvaluationStatus{Mode: v1alpha1.EvaluationInMemory, Reason: "cannot be evaluated in the database: " + err.Error()}, err
		}
		return v1alpha1.EvaluationStatus{Mode: v1alpha1.EvaluationInMemory, Reason: "Auto: cannot be evaluated in the database: " + err.Error()}, nil
	}
	return v1alpha1.EvaluationStatus{Mode: v1alpha1.EvaluationDatabase, Reason: string(mode) + ": the rule translates to SQL exactly"}, nil
}

// InDatabase says why a persona can't be evaluated in the database, nil
// when it can: every source it reads (of the namespace's sources)
// PostgreSQL through the same DSN Secret, the rule translated exactly
// (sqlrule.Check; the query's column types are checked when it runs).
// Insights that do not translate do not keep the rule out of the database:
// their results say they were not computed.
func InDatabase(spec *v1alpha1.PersonaSpec, p *rule.Program, namespace []v1alpha1.DataSource) error {
	sources, missing := candidates(spec, namespace)
	if len(missing) > 0 || len(sources) == 0 {
		return fmt.Errorf("no DataSources, or some of spec.dataSources do not exist")
	}
	var first *v1alpha1.PostgresSource
	in := make([]sqlrule.Source, 0, len(sources))
	for _, ds := range sources {
		pg := ds.Spec.Postgres
		if ds.Spec.Type != v1alpha1.DataSourcePostgreSQL || pg == nil {
			return fmt.Errorf("DataSource %s is not a PostgreSQL source", ds.Name)
		}
		if first == nil {
			first = pg
		} else if pg.DSNSecretRef != first.DSNSecretRef {
			return fmt.Errorf("DataSource %s reads another database (spec.postgres.dsnSecretRef) than %s", ds.Name, sources[0].Name)
		}
		in = append(in, sqlrule.Source{Name: ds.Name, Spec: ds.Spec})
	}
	return sqlrule.Check(p, in)
}

// DatabaseDisagrees is the warning of an explanation whose in-memory verdict
// (match) disagrees with the membership recorded by the persona's last
// evaluation in its database (recorded), "" when they agree or the persona
// is not evaluated in the database. Both read the same sources; they
// disagree when the data changed since that evaluation, or when the
// manager's copy of it and the database differ.
func DatabaseDisagrees(p *v1alpha1.Persona, match, recorded bool) string {
	if p.Status.Evaluation == nil || p.Status.Evaluation.Mode != v1alpha1.EvaluationDatabase || match == recorded {
		return ""
	}
	was := "not a member"
	if recorded {
		was = "a member"
	}
	when := "its last evaluation"
	if t := p.Status.LastEvaluationTime; t != nil {
		when += " (" + t.UTC().Format(time.RFC3339) + ")"
	}
	return fmt.Sprintf("the persona is evaluated in its database, where %s recorded the user as %s; the verdict above, "+
		"from the manager's copy of the same sources, differs: the data changed since, or the copy and the database disagree", when, was)
}
