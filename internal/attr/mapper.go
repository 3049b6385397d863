package attr

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/connector"
)

// Built-in attributes every profile has; DataSources may not declare them.
const (
	UserIDAttr    = "id"
	AccountIDAttr = "accountId"
	// PlaybooksAttr is the user attribute the Playbook controller fills with
	// the state of the user's playbook runs (see profile.PlaybookState). It is
	// reserved so that rules reading it can never silently read a DataSource's
	// column of the same name instead.
	PlaybooksAttr = "playbooks"
)

// expressionCostLimit bounds one attribute expression's evaluation so a bad
// expression cannot stall a sync.
const expressionCostLimit = 100_000

// Decl is one declared attribute of an entity.
type Decl struct {
	Name string
	Type Type
}

// Row is one user's or account's attribute values, parallel to the mapper's
// declarations for that entity (nil = absent).
type Row struct {
	Key       string // user id or account id
	AccountID string // user rows: the account the user belongs to ("" = none)
	Values    []any
}

// Mapped is what one record contributes. Exactly one of User, Account or Signal
// is set, except that a User record may also carry account attributes.
type Mapped struct {
	User    *Row
	Account *Row
	// Signal is a Signal record: SignalUser gets Signal appended to its list.
	SignalUser string
	Signal     any
}

type column struct {
	decl     Decl
	from     string
	program  cel.Program
	required bool
	account  bool // an account attribute carried on a User record
}

// Mapper turns records into rows according to a DataSource spec. It is safe for
// concurrent use.
type Mapper struct {
	entity         v1alpha1.Entity
	userIDField    string
	accountIDField string
	valueAttr      string // Signal: keep only this attribute's value
	signal         Decl
	columns        []column
	userDecls      []Decl
	accountDecls   []Decl
	signalDecls    []Decl
	needsRecordMap bool
}

// NewMapper compiles a DataSource spec's attribute mapping. Errors describe the
// spec, for a Stalled condition.
func NewMapper(spec *v1alpha1.DataSourceSpec) (*Mapper, error) {
	if spec.Type == v1alpha1.DataSourceEvents && spec.Events != nil {
		var err error
		if spec, err = eventsSpec(spec); err != nil {
			return nil, err
		}
	}
	m := &Mapper{
		entity:         spec.Entity,
		userIDField:    spec.Key.UserID,
		accountIDField: spec.Key.AccountID,
	}
	if m.entity == "" {
		m.entity = v1alpha1.EntityUser
	}
	if m.userIDField == "" && m.entity != v1alpha1.EntityAccount {
		m.userIDField = "id"
	}
	if m.entity == v1alpha1.EntitySignal {
		if spec.Signal == nil {
			return nil, fmt.Errorf("entity Signal requires spec.signal")
		}
		m.signal = Decl{Name: spec.Signal.Attribute, Type: List}
		m.valueAttr = spec.Signal.ValueAttribute
	}
	var env *cel.Env
	for i := range spec.Attributes {
		a := &spec.Attributes[i]
		col, err := m.compileColumn(a, &env)
		if err != nil {
			return nil, fmt.Errorf("spec.attributes[%d] (%s): %w", i, a.Name, err)
		}
		m.addColumn(col)
	}
	if m.valueAttr != "" && !m.hasSignalDecl(m.valueAttr) {
		return nil, fmt.Errorf("spec.signal.valueAttribute %q is not one of spec.attributes", m.valueAttr)
	}
	if m.entity == v1alpha1.EntitySignal && reservedUserAttr(m.signal.Name) {
		return nil, fmt.Errorf("spec.signal.attribute %q is reserved (built in%s)", m.signal.Name, reservedWhy(m.signal.Name))
	}
	return m, nil
}

func (m *Mapper) compileColumn(a *v1alpha1.AttributeMapping, env **cel.Env) (column, error) {
	col := column{decl: Decl{Name: a.Name, Type: Type(a.Type)}, from: a.From, required: a.Optional != nil && !*a.Optional}
	if col.from == "" {
		col.from = a.Name
	}
	switch a.Entity {
	case v1alpha1.EntityAccount:
		if m.entity != v1alpha1.EntityUser && m.entity != v1alpha1.EntityAccount {
			return col, fmt.Errorf("entity Account is only allowed on User or Account sources")
		}
		col.account = m.entity == v1alpha1.EntityUser
	case v1alpha1.EntityUser:
		if m.entity != v1alpha1.EntityUser {
			return col, fmt.Errorf("entity User is only allowed on User sources")
		}
	}
	if m.reserved(col) {
		return col, fmt.Errorf("attribute name %q is reserved (built in%s)", a.Name, reservedWhy(a.Name))
	}
	if a.Expression == "" {
		return col, nil
	}
	if *env == nil {
		e, err := cel.NewEnv(cel.Variable("record", cel.MapType(cel.StringType, cel.DynType)), ext.Strings(), ext.Encoders())
		if err != nil {
			return col, err
		}
		*env = e
	}
	ast, iss := (*env).Compile(a.Expression)
	if iss.Err() != nil {
		return col, fmt.Errorf("expression: %w", iss.Err())
	}
	prg, err := (*env).Program(ast, cel.CostLimit(expressionCostLimit))
	if err != nil {
		return col, fmt.Errorf("expression: %w", err)
	}
	col.program = prg
	m.needsRecordMap = true
	return col, nil
}

func (m *Mapper) reserved(c column) bool {
	if c.account || m.entity == v1alpha1.EntityAccount {
		return c.decl.Name == UserIDAttr
	}
	if m.entity == v1alpha1.EntitySignal {
		return false // signal element fields live inside the list
	}
	return reservedUserAttr(c.decl.Name)
}

func reservedUserAttr(name string) bool {
	return name == UserIDAttr || name == AccountIDAttr || name == PlaybooksAttr
}

// reservedWhy explains the one reserved name whose purpose is not obvious.
func reservedWhy(name string) string {
	if name == PlaybooksAttr {
		return ": user.playbooks is the Playbook controller's run state; declare the attribute under another name"
	}
	return ""
}

func (m *Mapper) addColumn(c column) {
	m.columns = append(m.columns, c)
	switch {
	case m.entity == v1alpha1.EntitySignal:
		m.signalDecls = append(m.signalDecls, c.decl)
	case c.account || m.entity == v1alpha1.EntityAccount:
		m.accountDecls = append(m.accountDecls, c.decl)
	default:
		m.userDecls = append(m.userDecls, c.decl)
	}
}

func (m *Mapper) hasSignalDecl(name string) bool {
	for _, d := range m.signalDecls {
		if d.Name == name {
			return true
		}
	}
	return false
}

// Entity is the entity of the mapper's records.
func (m *Mapper) Entity() v1alpha1.Entity { return m.entity }

// UserDecls are the user attributes, in Row.Values order.
func (m *Mapper) UserDecls() []Decl { return m.userDecls }

// AccountDecls are the account attributes, in Row.Values order.
func (m *Mapper) AccountDecls() []Decl { return m.accountDecls }

// SignalDecl is the user list attribute a Signal source fills.
func (m *Mapper) SignalDecl() (Decl, bool) {
	return m.signal, m.entity == v1alpha1.EntitySignal
}

// Map converts one record. An error rejects the record; its message names the
// field and the problem, never the value.
func (m *Mapper) Map(rec connector.Record) (Mapped, error) {
	var recordMap map[string]any
	if m.needsRecordMap {
		recordMap = normalizedMap(rec)
	}
	switch m.entity {
	case v1alpha1.EntityAccount:
		return m.mapAccount(rec, recordMap)
	case v1alpha1.EntitySignal:
		return m.mapSignal(rec, recordMap)
	default:
		return m.mapUser(rec, recordMap)
	}
}

func (m *Mapper) mapUser(rec connector.Record, recordMap map[string]any) (Mapped, error) {
	uid, err := key(rec, m.userIDField, "user id")
	if err != nil {
		return Mapped{}, err
	}
	user := &Row{Key: uid, Values: make([]any, 0, len(m.userDecls))}
	if m.accountIDField != "" {
		// A user without an account is valid: rules on account.* just don't match.
		user.AccountID, _ = optionalKey(rec, m.accountIDField)
		if err := CheckID(user.AccountID, "account id", m.accountIDField); err != nil {
			return Mapped{}, err
		}
	}
	var account *Row
	if len(m.accountDecls) > 0 && user.AccountID != "" {
		account = &Row{Key: user.AccountID, Values: make([]any, 0, len(m.accountDecls))}
	}
	for i := range m.columns {
		c := &m.columns[i]
		v, err := m.value(c, rec, recordMap)
		if err != nil {
			return Mapped{}, err
		}
		switch {
		case !c.account:
			user.Values = append(user.Values, v)
		case account != nil:
			account.Values = append(account.Values, v)
		}
	}
	return Mapped{User: user, Account: account}, nil
}

func (m *Mapper) mapAccount(rec connector.Record, recordMap map[string]any) (Mapped, error) {
	aid, err := key(rec, m.accountIDField, "account id")
	if err != nil {
		return Mapped{}, err
	}
	account := &Row{Key: aid, Values: make([]any, 0, len(m.accountDecls))}
	for i := range m.columns {
		v, err := m.value(&m.columns[i], rec, recordMap)
		if err != nil {
			return Mapped{}, err
		}
		account.Values = append(account.Values, v)
	}
	return Mapped{Account: account}, nil
}

func (m *Mapper) mapSignal(rec connector.Record, recordMap map[string]any) (Mapped, error) {
	uid, err := key(rec, m.userIDField, "user id")
	if err != nil {
		return Mapped{}, err
	}
	elem := make(map[string]any, len(m.columns))
	for i := range m.columns {
		c := &m.columns[i]
		v, err := m.value(c, rec, recordMap)
		if err != nil {
			return Mapped{}, err
		}
		if v != nil {
			elem[c.decl.Name] = v
		}
	}
	if m.valueAttr == "" {
		return Mapped{SignalUser: uid, Signal: elem}, nil
	}
	v, ok := elem[m.valueAttr]
	if !ok {
		return Mapped{}, fmt.Errorf("attribute %q is missing", m.valueAttr)
	}
	return Mapped{SignalUser: uid, Signal: v}, nil
}

// value reads, computes and converts one column.
func (m *Mapper) value(c *column, rec connector.Record, recordMap map[string]any) (any, error) {
	var raw any
	if c.program != nil {
		out, _, err := c.program.Eval(map[string]any{"record": recordMap})
		if err != nil {
			if c.required {
				return nil, fmt.Errorf("attribute %q: expression failed: %s", c.decl.Name, SafeError(err))
			}
			return nil, nil // e.g. no such key: an optional attribute is absent
		}
		raw, err = FromCEL(out)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: expression result is not a plain value", c.decl.Name)
		}
	} else {
		raw, _ = rec.Get(c.from)
		if s, ok := raw.(string); ok && s == "" && c.decl.Type != String {
			raw = nil // an empty CSV cell is a missing value, not a zero
		}
	}
	if raw == nil {
		if c.required {
			return nil, fmt.Errorf("attribute %q (field %q) is missing", c.decl.Name, c.from)
		}
		return nil, nil
	}
	v, err := Convert(raw, c.decl.Type)
	if err != nil {
		return nil, fmt.Errorf("attribute %q (field %q): %w", c.decl.Name, c.from, err)
	}
	return v, nil
}

// SafeError is an evaluation error's kind without the values it may carry,
// for status, Events and logs: a record's values (and so a profile's) may be
// personal data. cel-go puts values after a colon ("no such key: <key>") or in
// quotes (`invalid RFC 3339 timestamp "<value>"`, strconv's `parsing "<value>"`),
// so the message is cut at the first of either.
func SafeError(err error) string {
	msg := err.Error()
	if i := strings.IndexAny(msg, ":\"'`"); i >= 0 {
		msg = msg[:i]
	}
	if msg = strings.TrimSpace(msg); msg == "" {
		return "evaluation failed"
	}
	return msg
}

func key(rec connector.Record, field, what string) (string, error) {
	k, ok := optionalKey(rec, field)
	if !ok {
		return "", fmt.Errorf("%s field %q is missing or empty", what, field)
	}
	return k, CheckID(k, what, field)
}

// MaxIDLength is the longest user or account id, in bytes: the
// PersonaMembership and PlaybookProgress entries that store ids allow 253
// characters (maxLength), and 253 bytes are at most that many. A longer id
// would make every write of the slice holding it fail, freezing the persona.
const MaxIDLength = 253

// CheckID rejects an id no slice could store, or that would be ambiguous in
// names and hashes: too long, invalid UTF-8, or with a control character (a
// NUL among them). The message names the field, never the value.
func CheckID(id, what, field string) error {
	switch {
	case len(id) > MaxIDLength:
		return fmt.Errorf("%s field %q is longer than %d bytes", what, field, MaxIDLength)
	case !utf8.ValidString(id):
		return fmt.Errorf("%s field %q is not valid UTF-8", what, field)
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return fmt.Errorf("%s field %q contains a control character", what, field)
	}
	return nil
}

func optionalKey(rec connector.Record, field string) (string, bool) {
	raw, _ := rec.Get(field)
	if raw == nil {
		return "", false
	}
	s, ok := raw.(string)
	if !ok {
		conv, err := toString(raw)
		if err != nil {
			return "", false
		}
		s = conv.(string)
	}
	k := strings.TrimSpace(s)
	return k, k != ""
}

func normalizedMap(rec connector.Record) map[string]any {
	m := make(map[string]any, len(rec.Fields))
	for i, f := range rec.Fields {
		m[f] = Normalize(rec.Values[i])
	}
	return m
}

// eventsSpec is the mapping an Events source's spec stands for. Its records
// (one per user, from the event store) are keyed by userId and accountId; an
// attribute of entity Account reads the group trait of its name (or of its
// from); each aggregate is one more user attribute, read from the field of its
// name.
func eventsSpec(spec *v1alpha1.DataSourceSpec) (*v1alpha1.DataSourceSpec, error) {
	out := *spec
	out.Entity = v1alpha1.EntityUser
	out.Key = v1alpha1.RecordKey{UserID: "userId", AccountID: "accountId"}
	out.Attributes = make([]v1alpha1.AttributeMapping, 0, len(spec.Attributes)+len(spec.Events.Aggregates))
	names := map[string]bool{}
	for _, a := range spec.Attributes {
		if a.Entity == v1alpha1.EntityAccount && a.Expression == "" {
			from := a.From
			if from == "" {
				from = a.Name
			}
			a.From = v1alpha1.EventsGroupPrefix + from
		}
		names[a.Name] = true
		out.Attributes = append(out.Attributes, a)
	}
	for i, g := range spec.Events.Aggregates {
		if names[g.Name] {
			return nil, fmt.Errorf("spec.events.aggregates[%d]: %q is also the name of an attribute", i, g.Name)
		}
		names[g.Name] = true
		out.Attributes = append(out.Attributes, v1alpha1.AttributeMapping{Name: g.Name, Type: g.AttributeType(), From: g.Name})
	}
	return &out, nil
}
