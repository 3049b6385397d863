// Package datasource holds the DataSource controller's decisions, free of
// Kubernetes I/O: running one sync through a connector and the attribute mapper,
// when the next sync is due, and what the status says about it.
package datasource

import (
	"context"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/breaker"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/connector"
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
}

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
}

// Run fetches every record, maps it, and asks the circuit breaker whether the
// result may be applied. It applies nothing itself.
func Run(ctx context.Context, req Request) Outcome {
	start := req.Now()
	var out Outcome
	b := profile.NewBuilder(req.Name, req.Priority, req.Mapper, int(req.Baseline))
	reject := func(num int64, reason string) {
		out.Rejected++
		if len(out.Rejections) < MaxRejections {
			out.Rejections = append(out.Rejections, v1alpha1.RecordRejection{Record: num, Reason: conditions.Truncate(reason, MaxRejectionBytes)})
		}
	}
	err := req.Source.Fetch(ctx, func(rec connector.Record, recErr *connector.RecordError) error {
		if recErr != nil {
			reject(recErr.Num, recErr.Reason)
			return nil
		}
		m, err := req.Mapper.Map(rec)
		if err != nil {
			reject(rec.Num, err.Error())
			return nil
		}
		b.Add(m)
		return nil
	})
	out.Duration = req.Now().Sub(start)
	if err != nil {
		out.FetchErr = err
		return out
	}
	out.Data = b.Finish()
	out.Accepted = out.Data.Records
	out.Decision = breaker.Decide(breaker.Input{
		Baseline: req.Baseline, Records: out.Accepted, MaxShrinkPercent: req.MaxShrinkPercent, Forced: req.Forced,
	})
	return out
}
