// Package datasource holds the DataSource controller's decisions, free of
// Kubernetes I/O: running one sync through a connector and the attribute mapper,
// when the next sync is due, and what the status says about it.
package datasource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/breaker"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/format"
	"github.com/usersuccess/persona-operator/internal/connector/httpsrc"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// MaxRejections is how many rejected records status reports.
const MaxRejections = 5

// MaxRejectionBytes bounds a rejection's reason (the CRD's maxLength).
const MaxRejectionBytes = 512

// Outcome is the result of one sync.
type Outcome struct {
	// Data is the mapped result, nil when the fetch failed.
	Data *profile.SourceData
	// FetchErr is why the fetch failed (connector.ConfigError: the user must fix
	// something; anything else: transient).
	FetchErr error
	// Decision is the circuit breaker's verdict on Data.
	Decision   breaker.Decision
	Accepted   int64
	Rejected   int64
	Rejections []v1alpha1.RecordRejection
	Duration   time.Duration

	// Delta is the result of an incremental sync (Request.Incremental.Delta),
	// in place of Data.
	Delta *profile.Delta
	// Applied is what applying Delta changed, set by the caller once applied.
	Applied *profile.DeltaResult
	// Deletes counts the soft-deleted rows of an incremental sync.
	Deletes int64
	// Superseded counts the changes of a newest-first delta left out
	// because a newer change of the same key came before them.
	Superseded int64
	// Watermark is the largest watermark value read (zero: none, or the
	// source is not incremental).
	Watermark time.Time
	// Partial is set when the connector interrupted the listing
	// (connector.Interrupted): what was read, to be continued, never applied.
	Partial *Partial
}

// Partial is a sync a connector interrupted before the end of its listing: the
// records read so far, kept (in memory) for a later sync of the same spec and
// mode to continue from Position, the connector's resume value. It is never
// applied as it is: a listing is applied whole or not at all.
type Partial struct {
	out   Outcome
	full  *profile.Builder
	delta *profile.DeltaBuilder
	read  int64
	seen  keysSeen
	// Position goes back to the connector (httpsrc.WithResume).
	Position any
}

// Read is how many records the interrupted sync read.
func (p *Partial) Read() int64 { return p.read }

// Request is everything one sync needs.
type Request struct {
	Name     string
	Priority int32
	Source   connector.Source
	Mapper   *attr.Mapper
	// Baseline is the record count of the last applied data.
	Baseline         int64
	MaxShrinkPercent int32
	Forced           bool
	Now              func() time.Time
	// Previous is the source's data in the store, whose unchanged rows a full
	// sync reuses (profile.Builder.Reuse); nil on a first load.
	Previous *profile.SourceData
	// Incremental is set for a source with a watermark column.
	Incremental *Incremental
	// MaxRecords, when positive, is the most records (accepted or rejected)
	// the sync may read: one more fails it with ReasonLimitExceeded, and the
	// last good data stays.
	MaxRecords int64
	// Resume continues an interrupted sync of the same spec and mode (its
	// Source resumes from Resume.Position).
	Resume *Partial
}

// Limits are the cluster-wide caps on a sync, set by the manager's flags; a
// spec cannot exceed them. Zero fields set no cap.
type Limits struct {
	// MaxResponseBytes caps spec.http.maxResponseBytes (default included).
	MaxResponseBytes int64
	// MaxRecords caps the records one sync reads (Request.MaxRecords).
	MaxRecords int64
	// MaxSyncTimeout caps spec.timeout (default included).
	MaxSyncTimeout time.Duration
	// MaxUsers caps the users one namespace's store holds (CheckUsers).
	MaxUsers int
}

// CheckUsers is the cap on users per namespace: a sync that would make the
// namespace hold more than max users (known now, added by the sync) is not
// applied and stalls with LimitExceeded, the last good data kept, so one
// namespace cannot grow the shared manager's memory without bound. A sync that
// adds no user always passes (one that shrinks or changes a namespace already
// over a lowered cap must still apply).
func CheckUsers(known, added, max int) error {
	if max <= 0 || added == 0 || known+added <= max {
		return nil
	}
	return &conditions.Stalled{Reason: v1alpha1.ReasonLimitExceeded, Message: fmt.Sprintf(
		"applying this sync would make the namespace hold %d users, over the manager's limit of %d (--max-users-per-namespace); the last good data is kept",
		known+added, max)}
}

// Apply lowers the spec's timeout and response size to the caps, in place
// (the caller passes a copy), and says which fields it lowered, for a
// message. Sources are built from the result, so no sync runs longer or reads
// more than the cluster allows.
func (l Limits) Apply(spec *v1alpha1.DataSourceSpec) (lowered []string) {
	if l.MaxSyncTimeout > 0 && spec.SyncTimeout() > l.MaxSyncTimeout {
		spec.Timeout = &metav1.Duration{Duration: l.MaxSyncTimeout}
		lowered = append(lowered, fmt.Sprintf("spec.timeout to %s", l.MaxSyncTimeout))
	}
	if h := spec.HTTP; h != nil && l.MaxResponseBytes > 0 {
		asked := h.MaxResponseBytes
		if asked <= 0 {
			asked = httpsrc.DefaultMaxResponseBytes
		}
		if asked > l.MaxResponseBytes {
			h.MaxResponseBytes = l.MaxResponseBytes
			lowered = append(lowered, fmt.Sprintf("spec.http.maxResponseBytes to %d", l.MaxResponseBytes))
		}
	}
	return lowered
}

// tooManyRecords is the error that stops a sync over Request.MaxRecords.
func tooManyRecords(limit int64) error {
	return connector.Configf(v1alpha1.ReasonLimitExceeded,
		"the source has more than %d records, the most one source may hold in this cluster "+
			"(the manager's --max-records-per-source): narrow the query or split the source", limit)
}

// Incremental says how to read an incremental source's records.
type Incremental struct {
	// WatermarkField is the timestamp field whose largest value is the next
	// watermark.
	WatermarkField string
	// DeletedField, when set, is a boolean field: true marks a soft-deleted
	// row, removed by a delta and left out of a full load.
	DeletedField string
	// DeletedValues, when set, are the string values of DeletedField that
	// mark a deleted row, instead of true.
	DeletedValues []string
	// NewestFirst: a delta lists the newest changes first, so of several
	// changes to one key the first listed is applied (otherwise the last).
	NewestFirst bool
	// Delta: this sync reads only changed rows, to be applied as a delta.
	Delta bool
	// WatermarkSpec and DeletedSpec name the spec fields, and What says what
	// is missing ("the query has no column"), in messages.
	WatermarkSpec, DeletedSpec, What string
}

// Run fetches every record, maps it, and asks the circuit breaker whether the
// result may be applied. It applies nothing itself.
func Run(ctx context.Context, req Request) Outcome {
	start := req.Now()
	var out Outcome
	var full *profile.Builder
	var delta *profile.DeltaBuilder
	var read int64
	applied := newestFirst(req.Incremental)
	switch p := req.Resume; {
	case p != nil:
		out, full, delta, read, applied = p.out, p.full, p.delta, p.read, p.seen
	case req.Incremental != nil && req.Incremental.Delta:
		delta = profile.NewDeltaBuilder(req.Name, req.Mapper)
	default:
		full = profile.NewBuilder(req.Name, req.Priority, req.Mapper, int(req.Baseline))
		full.Reuse(req.Previous)
	}
	reject := func(num int64, reason string) {
		out.Rejected++
		if len(out.Rejections) < MaxRejections {
			out.Rejections = append(out.Rejections, v1alpha1.RecordRejection{Record: num, Reason: conditions.Truncate(reason, MaxRejectionBytes)})
		}
	}
	err := req.Source.Fetch(ctx, func(rec connector.Record, recErr *connector.RecordError) error {
		if read++; req.MaxRecords > 0 && read > req.MaxRecords {
			return tooManyRecords(req.MaxRecords)
		}
		if recErr != nil {
			reject(recErr.Num, recErr.Reason)
			return nil
		}
		deleted := false
		if inc := req.Incremental; inc != nil {
			var err error
			if deleted, err = out.incremental(inc, rec); err != nil {
				if connector.IsConfig(err) {
					return err
				}
				reject(rec.Num, err.Error())
				return nil
			}
		}
		if deleted && full != nil {
			return nil // a soft-deleted row is not part of the source
		}
		m, err := req.Mapper.Map(rec)
		if err != nil {
			reject(rec.Num, err.Error())
			return nil
		}
		if delta != nil && applied.seen(m) {
			out.Superseded++
			return nil // an older change of a key already changed in this delta
		}
		switch {
		case full != nil:
			full.Add(m)
		case deleted:
			out.Deletes++
			delta.Delete(m)
		default:
			out.Accepted++
			delta.Upsert(m)
		}
		return nil
	})
	out.Duration += req.Now().Sub(start)
	if err != nil {
		var intr *connector.Interrupted
		if errors.As(err, &intr) {
			out.Partial = &Partial{out: out, full: full, delta: delta, read: read, seen: applied, Position: intr.Resume}
		}
		out.FetchErr = err
		return out
	}
	if delta != nil {
		out.Delta = delta.Finish()
		out.Decision = DeltaDecision(req.Baseline, out.Deletes, req.MaxShrinkPercent, req.Forced)
		return out
	}
	out.Data = full.Finish()
	out.Accepted = out.Data.Records
	out.Decision = breaker.Decide(breaker.Input{
		Baseline: req.Baseline, Records: out.Accepted, MaxShrinkPercent: req.MaxShrinkPercent, Forced: req.Forced,
	})
	return out
}

// incremental reads a record's watermark (keeping the largest) and whether it
// is soft-deleted. A missing watermark field is a configuration error; a row
// whose values have the wrong type is rejected.
func (out *Outcome) incremental(inc *Incremental, rec connector.Record) (deleted bool, err error) {
	v, ok := rec.Get(inc.WatermarkField)
	if !ok {
		return false, connector.Configf(v1alpha1.ReasonInvalidSpec, "%s: %s %q", inc.WatermarkSpec, inc.What, inc.WatermarkField)
	}
	t, ok := watermark(v)
	if !ok {
		return false, fmt.Errorf("watermark field %q is %s, not a timestamp", inc.WatermarkField, kind(v))
	}
	if t.After(out.Watermark) {
		out.Watermark = t
	}
	if inc.DeletedField == "" {
		return false, nil
	}
	d, ok := rec.Get(inc.DeletedField)
	if !ok {
		return false, connector.Configf(v1alpha1.ReasonInvalidSpec, "%s: %s %q", inc.DeletedSpec, inc.What, inc.DeletedField)
	}
	switch b := d.(type) {
	case nil:
		return false, nil
	case bool:
		if len(inc.DeletedValues) == 0 {
			return b, nil
		}
	case string:
		if len(inc.DeletedValues) > 0 {
			return slices.Contains(inc.DeletedValues, b), nil
		}
	}
	if len(inc.DeletedValues) > 0 {
		return false, fmt.Errorf("deleted field %q is %s, not a string", inc.DeletedField, kind(d))
	}
	return false, fmt.Errorf("deleted field %q is %s, not a boolean", inc.DeletedField, kind(d))
}

// keysSeen are the keys a newest-first delta has applied; nil for other syncs.
type keysSeen map[string]bool

func newestFirst(inc *Incremental) keysSeen {
	if inc == nil || !inc.Delta || !inc.NewestFirst {
		return nil
	}
	return keysSeen{}
}

// seen reports whether m's user or account key already had a (newer) change
// in this delta, and marks it.
func (k keysSeen) seen(m attr.Mapped) bool {
	if k == nil {
		return false
	}
	key := ""
	switch {
	case m.User != nil:
		key = "u/" + m.User.Key
	case m.Account != nil:
		key = "a/" + m.Account.Key
	default:
		return false
	}
	if k[key] {
		return true
	}
	k[key] = true
	return false
}

// watermark reads a watermark value (format.Timestamp: the connectors that
// keep a window of results read it the same way).
func watermark(v any) (time.Time, bool) { return format.Timestamp(v) }

// kind names a value's type in messages, never the value.
func kind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number, float64, int64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("a %T", v)
}

// DeltaDecision is the circuit breaker's verdict on an incremental sync: its
// deletes count against the baseline as a shrinking full sync's missing
// records do, so a delta that deletes more than maxShrinkPercent of the
// source is held back. Upserts alone never are.
func DeltaDecision(baseline, deletes int64, maxShrinkPercent int32, forced bool) breaker.Decision {
	if forced || deletes == 0 {
		return breaker.Decision{Apply: true}
	}
	remaining := max(baseline-deletes, 0)
	d := breaker.Decide(breaker.Input{Baseline: baseline, Records: remaining, MaxShrinkPercent: maxShrinkPercent})
	if d.Apply || d.Reason != breaker.ReasonSuspiciousShrink {
		return d
	}
	d.Reason = breaker.ReasonSuspiciousShrink
	d.Message = fmt.Sprintf("the incremental sync deletes %d of the %d records last applied (%d%%, maxShrinkPercent %d); "+
		"keeping the last good data. To accept it, set the personas.usersuccess.io/force-apply annotation",
		deletes, baseline, breaker.ShrinkPercent(baseline, remaining), maxShrinkPercent)
	return d
}
