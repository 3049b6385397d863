// Package explain evaluates a Persona rule for one profile and reports, sub-
// expression by sub-expression, what each part evaluated to: which clauses of
// an && were false, which comparison read which value, which attribute the
// profile lacks. It is pure: the caller supplies the profile's values.
package explain
