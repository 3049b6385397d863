// Package sqlrule translates a compiled Persona rule (CEL over `user`,
// `account` and `now`) into one SQL query over the source queries of the
// namespace's DataSources: the source queries become CTEs, merged the way the
// profile store merges them, and the rule becomes the WHERE clause. The query
// returns the ids of the members in byte order.
//
// The translation is exact or refused. Every translated sub-expression is SQL
// NULL exactly when CEL's evaluation of it is an error (an absent attribute, an
// int64 overflow, a timestamp out of range, ordering a NaN), so SQL's
// three-valued AND, OR, NOT and CASE compute CEL's &&, ||, ! and ?: (which
// absorb errors the same way), and `WHERE rule IS TRUE` keeps the profiles
// whose rule is true, as the in-memory evaluator does. What can't be exact is
// refused with the position of the sub-expression and why (Refusal): regular
// expressions (RE2 is not POSIX), double arithmetic (PostgreSQL raises on
// overflow where IEEE gives an infinity), string conversions, maps, lists
// other than a Signal source's values, attribute expressions.
//
// Representations: ints are int8 or numeric holding an int64 (arithmetic is
// done in numeric and range-checked, so it never raises); doubles are float8
// (compared with NaN made NULL, as CEL refuses to order a NaN); strings are
// text compared in byte order (COLLATE "C", Go's and CEL's order); timestamps
// and durations are numeric nanoseconds since the Unix epoch, exact over
// CEL's whole range, with CEL's overflow checks applied to every sum and
// difference.
//
// The SQL stays within what PostgreSQL-wire engines accept: CTEs, LEFT JOIN,
// UNION, COALESCE, NULLIF, CASE, LEAST, GREATEST, EXISTS and correlated
// scalar subqueries, count, extract(epoch ...), numeric and float8. What
// differs between engines is behind Dialect.
package sqlrule
