package postgres

import (
	"context"
	"fmt"
)

// Describe returns the result columns of the configured query, name → SQL
// type name as the server reports it (int8, text, timestamptz, _text ...),
// without running it: the server only parses and plans it, in a read-only
// transaction. A persona evaluated in the database needs them to know how
// each column converts (internal/sqlrule). Errors are sanitized as Fetch's.
func Describe(ctx context.Context, cfg Config, opts ...Option) (map[string]string, error) {
	s := New(cfg, opts...).(*source)
	pcfg, err := parseDSN(s.cfg.DSN, s.policy)
	if err != nil {
		return nil, err
	}
	tx, end, err := begin(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	defer end()
	query, _ := s.cfg.query()
	sd, err := tx.Prepare(ctx, "", query)
	if err != nil {
		return nil, classify(ctx, "describing the query", err)
	}
	out := make(map[string]string, len(sd.Fields))
	for _, f := range sd.Fields {
		if _, dup := out[f.Name]; dup {
			return nil, fmt.Errorf("describing the query: column %q appears twice", f.Name)
		}
		name := fmt.Sprintf("oid %d", f.DataTypeOID)
		if t, ok := tx.Conn().TypeMap().TypeForOID(f.DataTypeOID); ok {
			name = t.Name
		}
		out[f.Name] = name
	}
	return out, nil
}
