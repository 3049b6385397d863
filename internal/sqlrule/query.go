package sqlrule

import (
	"fmt"
	"strings"
)

// query assembles the translated rule's query: the members (id, and account
// id or the empty string), the rule as the WHERE clause, in byte order of id.
func (t *translator) query(where string) (string, error) {
	return t.assemble("p.id, COALESCE(p.acct, '')", "\nWHERE "+where+"\nORDER BY "+t.d.Bytewise("p.id"))
}

// assemble is a query over the profiles: the source queries as CTEs, each
// source's accepted records, the merged profiles (p) and accounts (a), then
// SELECT sel FROM p (LEFT JOIN a) tail.
func (t *translator) assemble(sel, tail string) (string, error) {
	if len(t.m.users) == 0 {
		return "", fmt.Errorf("no PostgreSQL DataSource of entity User: there are no profiles")
	}
	// Resolve the merged columns first: it decides which columns each
	// source's rows CTE carries.
	pSel := []string{keyOf(t.m.users) + " AS id", coalesce(t.m.users, func(s *source) string { return join(s) + ".acct" }) + " AS acct"}
	for i, name := range t.userCols.order {
		refs := make([]string, 0, len(t.m.userAttr[name]))
		for _, c := range t.m.userAttr[name] {
			refs = append(refs, join(c.src)+"."+c.src.use(c.m))
		}
		pSel = append(pSel, fmt.Sprintf("COALESCE(%s) AS u%d", strings.Join(refs, ", "), i))
	}
	aSel := make([]string, 0, len(t.acctCols.order))
	for i, name := range t.acctCols.order {
		refs := make([]string, 0, len(t.m.acctAttr[name]))
		for _, c := range t.m.acctAttr[name] {
			refs = append(refs, join(c.src)+"."+c.src.use(c.m))
		}
		aSel = append(aSel, fmt.Sprintf("COALESCE(%s) AS a%d", strings.Join(refs, ", "), i))
	}
	needed := map[*source]bool{}
	for _, s := range t.m.users {
		needed[s] = true
	}
	if len(aSel) > 0 {
		for _, s := range t.m.accounts {
			needed[s] = true
		}
	}
	for s := range t.signals {
		needed[s] = true
	}
	ctes := make([]string, 0, 2*len(t.m.sources)+2)
	for _, s := range t.m.sources {
		if needed[s] {
			ctes = append(ctes, fmt.Sprintf("%s AS (%s\n)", t.d.Ident(s.cte()), s.query))
		}
	}
	for _, s := range t.m.sources {
		if !needed[s] {
			continue
		}
		rows, err := s.rowsCTE(t.d)
		if err != nil {
			return "", err
		}
		ctes = append(ctes, rows)
	}
	ctes = append(ctes, fmt.Sprintf("%s AS (SELECT %s FROM %s)", t.d.Ident("persona.p"), strings.Join(pSel, ", "), t.merged(t.m.users)))
	from := t.d.Ident("persona.p") + " p"
	if len(aSel) > 0 {
		ctes = append(ctes, fmt.Sprintf("%s AS (SELECT %s AS id, %s FROM %s)", t.d.Ident("persona.a"), keyOf(t.m.accounts),
			strings.Join(aSel, ", "), t.merged(t.m.accounts)))
		from += " LEFT JOIN " + t.d.Ident("persona.a") + " a ON a.id = p.acct"
	}
	return fmt.Sprintf("WITH %s\nSELECT %s FROM %s%s", strings.Join(ctes, ",\n"), sel, from, tail), nil
}

// keyOf is the merged key column of the sources (merged).
func keyOf(sources []*source) string {
	if len(sources) == 1 {
		return join(sources[0]) + ".k"
	}
	return "ids.k"
}

// join is the alias of a source's rows joined to the merged keys.
func join(s *source) string { return fmt.Sprintf("j%d", s.idx) }

// merged is the keys of the sources' rows, each source's row joined. One
// source is its rows alone: each CTE is then read once, so PostgreSQL
// inlines it and pushes the rule's conditions down to the source's scan,
// instead of materializing every row and joining it to its own keys.
func (t *translator) merged(sources []*source) string {
	if len(sources) == 1 {
		return t.d.Ident(sources[0].rows()) + " " + join(sources[0])
	}
	keys := make([]string, 0, len(sources))
	for _, s := range sources {
		keys = append(keys, "SELECT k FROM "+t.d.Ident(s.rows()))
	}
	out := "(" + strings.Join(keys, " UNION ") + ") ids"
	for _, s := range sources {
		out += fmt.Sprintf(" LEFT JOIN %s %s ON %s.k = ids.k", t.d.Ident(s.rows()), join(s), join(s))
	}
	return out
}

func coalesce(sources []*source, ref func(*source) string) string {
	refs := make([]string, 0, len(sources))
	for _, s := range sources {
		refs = append(refs, ref(s))
	}
	return "COALESCE(" + strings.Join(refs, ", ") + ")"
}
