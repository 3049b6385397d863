package sqlrule

import (
	"fmt"
	"sort"
	"strings"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
)

// Source is one DataSource the rule may read, with the result columns of its
// query as the database describes them (name → SQL type name, e.g. "int8").
type Source struct {
	Name    string
	Spec    v1alpha1.DataSourceSpec
	Columns map[string]string
}

// cand is where an attribute's value may come from: one source's mapping.
type cand struct {
	src *source
	m   *v1alpha1.AttributeMapping
}

// source is a Source with its defaults resolved and its CTE names.
type source struct {
	*Source
	idx    int
	entity v1alpha1.Entity
	query  string
	// used attributes of this source, by mapping name, in order of use.
	used []*v1alpha1.AttributeMapping
}

// CTE names: quoted with a dot, so no table a source query reads can be
// shadowed by them (a CTE is visible to the source queries after it).
func (s *source) cte() string  { return fmt.Sprintf("persona.s%d", s.idx) }
func (s *source) rows() string { return fmt.Sprintf("persona.r%d", s.idx) }

// merge is how the profile store merges the sources (profile.buildPlan): in
// precedence order (higher priority, then name), the first source declaring
// an attribute fixes its type, later declarations of another type are left
// out, and a profile's value is the first non-absent one.
type merge struct {
	sources  []*source
	users    []*source // User sources, in precedence order
	accounts []*source // Account sources, in precedence order
	userAttr map[string][]cand
	userType map[string]attr.Type
	acctAttr map[string][]cand
	acctType map[string]attr.Type
}

func newMerge(in []Source) (*merge, error) {
	m := &merge{userAttr: map[string][]cand{}, userType: map[string]attr.Type{},
		acctAttr: map[string][]cand{}, acctType: map[string]attr.Type{}}
	for i := range in {
		s := &source{Source: &in[i], entity: in[i].Spec.Entity}
		if s.entity == "" {
			s.entity = v1alpha1.EntityUser
		}
		if in[i].Spec.Postgres == nil {
			return nil, fmt.Errorf("DataSource %s is not a PostgreSQL source", s.Name)
		}
		s.query = strings.TrimRight(strings.TrimSpace(in[i].Spec.Postgres.Query), ";")
		m.sources = append(m.sources, s)
	}
	sort.SliceStable(m.sources, func(a, b int) bool {
		sa, sb := m.sources[a].Spec, m.sources[b].Spec
		if sa.Priority != sb.Priority {
			return sa.Priority > sb.Priority
		}
		return m.sources[a].Name < m.sources[b].Name
	})
	for i, s := range m.sources {
		s.idx = i
		switch s.entity {
		case v1alpha1.EntityAccount:
			m.accounts = append(m.accounts, s)
			m.add(s, true, nil)
		case v1alpha1.EntitySignal:
			if s.Spec.Signal == nil {
				return nil, fmt.Errorf("DataSource %s: entity Signal requires spec.signal", s.Name)
			}
			m.addDecl(m.userAttr, m.userType, s.Spec.Signal.Attribute, attr.List, cand{src: s})
		default:
			m.users = append(m.users, s)
			m.add(s, false, func(a *v1alpha1.AttributeMapping) bool { return a.Entity != v1alpha1.EntityAccount })
			m.add(s, true, func(a *v1alpha1.AttributeMapping) bool { return a.Entity == v1alpha1.EntityAccount })
		}
	}
	return m, nil
}

func (m *merge) add(s *source, account bool, keep func(*v1alpha1.AttributeMapping) bool) {
	attrs, types := m.userAttr, m.userType
	if account {
		attrs, types = m.acctAttr, m.acctType
	}
	for i := range s.Spec.Attributes {
		a := &s.Spec.Attributes[i]
		if keep == nil || keep(a) {
			m.addDecl(attrs, types, a.Name, attr.Type(a.Type), cand{src: s, m: a})
		}
	}
}

func (m *merge) addDecl(attrs map[string][]cand, types map[string]attr.Type, name string, t attr.Type, c cand) {
	if prev, ok := types[name]; ok && prev != t {
		return // a conflict: the store leaves it out too
	}
	types[name] = t
	attrs[name] = append(attrs[name], c)
}

// from is the record field a mapping reads.
func from(a *v1alpha1.AttributeMapping) string {
	if a.From != "" {
		return a.From
	}
	return a.Name
}

func required(a *v1alpha1.AttributeMapping) bool { return a.Optional != nil && !*a.Optional }

// use marks a mapping of s as read by the rule, returning its column alias in
// s's rows CTE.
func (s *source) use(a *v1alpha1.AttributeMapping) string {
	for i, u := range s.used {
		if u == a {
			return fmt.Sprintf("c%d", i)
		}
	}
	s.used = append(s.used, a)
	return fmt.Sprintf("c%d", len(s.used)-1)
}

// rowsCTE is the source's records as the mapper accepts them: the key
// trimmed and valid, required attributes present, every used attribute
// converted; one row per accepted record.
func (s *source) rowsCTE(d Dialect) (string, error) {
	sel, where, err := s.keys(d)
	if err != nil {
		return "", err
	}
	for i := range s.Spec.Attributes {
		cond, err := s.accepts(d, &s.Spec.Attributes[i], i)
		if err != nil {
			return "", err
		}
		if cond != "" {
			sel = append(sel, cond)
			where = append(where, fmt.Sprintf("x.req%d", i))
		}
	}
	if s.entity == v1alpha1.EntitySignal && s.Spec.Signal.ValueAttribute != "" {
		// A record without the value attribute is rejected.
		a := mapping(s, s.Spec.Signal.ValueAttribute)
		if a == nil {
			return "", fmt.Errorf("DataSource %s: spec.signal.valueAttribute is not declared", s.Name)
		}
		if _, ok := s.Columns[from(a)]; !ok {
			where = append(where, "FALSE")
		} else {
			sel = append(sel, fmt.Sprintf("(q.%s IS NOT NULL) AS reqv", d.Ident(from(a))))
			where = append(where, "x.reqv")
		}
	}
	cols := []string{"x.k"}
	if s.entity == v1alpha1.EntityUser {
		cols = append(cols, "x.acct")
	}
	for i, a := range s.used {
		v := "NULL"
		if typ, ok := s.Columns[from(a)]; ok {
			if v, err = d.Column("q."+d.Ident(from(a)), typ, attr.Type(a.Type)); err != nil {
				return "", fmt.Errorf("DataSource %s, attribute %s (column %q): %w", s.Name, a.Name, from(a), err)
			}
		}
		sel = append(sel, fmt.Sprintf("%s AS c%d", v, i))
		cols = append(cols, fmt.Sprintf("x.c%d", i))
	}
	where = append(where, d.ValidID("x.k"))
	return fmt.Sprintf("%s AS (SELECT %s FROM (SELECT %s FROM %s q) x WHERE %s)", d.Ident(s.rows()),
		strings.Join(cols, ", "), strings.Join(sel, ", "), d.Ident(s.cte()), strings.Join(where, " AND ")), nil
}

// keys selects the record's key (k) and, for a User source, its account
// (acct, NULL for none), with the conditions under which the mapper accepts
// them.
func (s *source) keys(d Dialect) (sel, where []string, err error) {
	keyField, keyName := s.Spec.Key.UserID, "user id"
	if s.entity == v1alpha1.EntityAccount {
		keyField, keyName = s.Spec.Key.AccountID, "account id"
	} else if keyField == "" {
		keyField = "id"
	}
	typ, ok := s.Columns[keyField]
	if !ok {
		return nil, nil, fmt.Errorf("DataSource %s: its query has no %s column %q", s.Name, keyName, keyField)
	}
	key, err := d.ID("q."+d.Ident(keyField), typ)
	if err != nil {
		return nil, nil, fmt.Errorf("DataSource %s: %w", s.Name, err)
	}
	sel = make([]string, 0, 2)
	sel = append(sel, key+" AS k")
	if s.entity != v1alpha1.EntityUser {
		return sel, nil, nil
	}
	acct := "NULL::text"
	if typ, ok := s.Columns[s.Spec.Key.AccountID]; ok && s.Spec.Key.AccountID != "" {
		id, err := d.ID("q."+d.Ident(s.Spec.Key.AccountID), typ)
		if err != nil {
			return nil, nil, fmt.Errorf("DataSource %s: %w", s.Name, err)
		}
		acct = "NULLIF(" + id + ", '')"
	}
	// An account id the mapper's CheckID refuses rejects the record.
	return append(sel, acct+" AS acct"), []string{"(x.acct IS NULL OR " + d.ValidID("x.acct") + ")"}, nil
}

// accepts checks that no value of a mapping can make the mapper reject a
// record in a way SQL would not see (a failed conversion or expression), and
// returns the select item testing that the mapper accepts the record's value
// (present when required, convertible), "" when it always does.
func (s *source) accepts(d Dialect, a *v1alpha1.AttributeMapping, i int) (string, error) {
	if a.Expression != "" {
		return "", fmt.Errorf("DataSource %s: attribute %s is computed by a CEL expression over the record, which is not translated", s.Name, a.Name)
	}
	typ, ok := s.Columns[from(a)]
	if !ok {
		if required(a) {
			return "FALSE AS req" + fmt.Sprint(i), nil // every record is rejected
		}
		return "", nil
	}
	ref := "q." + d.Ident(from(a))
	if !d.Converts(typ, attr.Type(a.Type)) {
		_, err := d.Column(ref, typ, attr.Type(a.Type))
		return "", fmt.Errorf("DataSource %s, attribute %s (column %q): %w", s.Name, a.Name, from(a), err)
	}
	cond := "TRUE"
	if required(a) {
		cond = ref + " IS NOT NULL"
	}
	if rejects := d.Rejects(ref, typ, attr.Type(a.Type)); rejects != "" {
		cond += " AND NOT COALESCE(" + rejects + ", FALSE)"
	}
	if cond == "TRUE" {
		return "", nil
	}
	return fmt.Sprintf("(%s) AS req%d", cond, i), nil
}
