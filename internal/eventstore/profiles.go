package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/connector"
)

// Profile is what the store knows of one user, at a time.
type Profile struct {
	UserID    string
	AccountID string
	// Traits are the user's merged identify traits; Group the merged traits of
	// the user's account.
	Traits, Group map[string]any
	// Values are the aggregates, by name (nil: no matching event).
	Values map[string]any
	// Next is the next instant an aggregate may change as time passes (a
	// windowed event ages out, a future-stamped one comes in); zero: none.
	Next time.Time
}

// Record is the profile as a connector record for the attribute mapper:
// fields userId and accountId (the keys), the aggregates, the identify
// traits by name, and the group traits as group.<trait>. An aggregate comes
// before a trait of the same name, so it wins.
func (p *Profile) Record(num int64) connector.Record {
	n := 2 + len(p.Values) + len(p.Traits) + len(p.Group)
	rec := connector.Record{Num: num, Fields: make([]string, 0, n), Values: make([]any, 0, n)}
	add := func(f string, v any) {
		rec.Fields = append(rec.Fields, f)
		rec.Values = append(rec.Values, v)
	}
	add("userId", p.UserID)
	if p.AccountID != "" {
		add("accountId", p.AccountID)
	}
	for k, v := range p.Values {
		add(k, v)
	}
	for k, v := range p.Traits {
		add(k, v)
	}
	for k, v := range p.Group {
		add(v1alpha1.EventsGroupPrefix+k, v)
	}
	return rec
}

// Profiles computes the profiles of a namespace's users at now: every user
// (users nil) or the listed ones, one query. visit sees each in turn.
func (s *Store) Profiles(ctx context.Context, namespace string, aggs []Aggregate, users []string, now time.Time,
	visit func(*Profile) error) error {
	q, args := profileSQL(aggs)
	args[0], args[2] = namespace, now
	if users != nil {
		args[1] = users
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("reading profiles: %w", safe(err))
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanProfile(rows, aggs)
		if err != nil {
			return err
		}
		if err := visit(p); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading profiles: %w", safe(err))
	}
	return nil
}

func scanProfile(rows pgx.Rows, aggs []Aggregate) (*Profile, error) {
	var (
		p              Profile
		account        *string
		traits, group  []byte
		next           *time.Time
		values         = make([]any, len(aggs))
		dest           = make([]any, 0, 5+len(aggs))
		lastValueBytes = make([][]byte, len(aggs))
	)
	dest = append(dest, &p.UserID, &traits, &account, &group, &next)
	for i, a := range aggs {
		if a.Function == "LastValue" {
			dest = append(dest, &lastValueBytes[i])
			continue
		}
		dest = append(dest, &values[i])
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, fmt.Errorf("reading profiles: %w", safe(err))
	}
	if account != nil {
		p.AccountID = *account
	}
	if next != nil {
		p.Next = next.UTC()
	}
	var err error
	if p.Traits, err = object(traits); err != nil {
		return nil, err
	}
	if p.Group, err = object(group); err != nil {
		return nil, err
	}
	p.Values = make(map[string]any, len(aggs))
	for i, a := range aggs {
		v := values[i]
		if a.Function == "LastValue" && lastValueBytes[i] != nil {
			if err := json.Unmarshal(lastValueBytes[i], &v); err != nil {
				return nil, fmt.Errorf("reading profiles: aggregate %s is not JSON", a.Name)
			}
		}
		if t, ok := v.(time.Time); ok {
			v = t.UTC()
		}
		if v != nil {
			p.Values[a.Name] = v
		}
	}
	return &p, nil
}

func object(b []byte) (map[string]any, error) {
	if b == nil {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reading profiles: traits are not a JSON object")
	}
	return m, nil
}
