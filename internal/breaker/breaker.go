// Package breaker decides whether a sync's result may replace a DataSource's last
// good data. A source that hiccups (returns nothing, or much less than before) must
// not make every user exit a persona and re-enter it, re-triggering playbooks, on
// the next good sync: such a result is held back until a person accepts it.
package breaker

import "fmt"

// Reasons a result is held back; they are condition reasons.
const (
	ReasonEmptyResult      = "EmptyResult"
	ReasonSuspiciousShrink = "SuspiciousShrink"
)

// Input describes the last applied data and the new result.
type Input struct {
	// Baseline is the record count of the last applied data (status
	// recordsAccepted, which survives restarts); 0 when nothing was ever applied.
	Baseline int64
	// Records is the accepted record count of the new result.
	Records int64
	// MaxShrinkPercent is the largest allowed drop against Baseline; 100 disables.
	MaxShrinkPercent int32
	// Forced means a person asked to apply this result whatever it looks like.
	Forced bool
}

// Decision says whether to apply, and if not, why.
type Decision struct {
	Apply   bool
	Reason  string
	Message string
}

// Decide applies the circuit-breaker policy.
func Decide(in Input) Decision {
	if in.Forced {
		return Decision{Apply: true}
	}
	if in.Records <= 0 {
		return Decision{Reason: ReasonEmptyResult, Message: fmt.Sprintf(
			"the sync returned no valid records (last applied: %d); keeping the last good data. "+
				"If the source is really empty, set the personas.usersuccess.io/force-apply annotation", in.Baseline)}
	}
	if in.Baseline <= 0 || in.MaxShrinkPercent >= 100 || in.Records >= in.Baseline {
		return Decision{Apply: true}
	}
	// Compare in integers: shrink% > max  ⇔  (baseline-records)*100 > max*baseline.
	if (in.Baseline-in.Records)*100 > int64(in.MaxShrinkPercent)*in.Baseline {
		return Decision{Reason: ReasonSuspiciousShrink, Message: fmt.Sprintf(
			"the sync returned %d valid records, %d%% fewer than the %d last applied (maxShrinkPercent %d); "+
				"keeping the last good data. To accept it, set the personas.usersuccess.io/force-apply annotation",
			in.Records, ShrinkPercent(in.Baseline, in.Records), in.Baseline, in.MaxShrinkPercent)}
	}
	return Decision{Apply: true}
}

// ShrinkPercent is the drop from baseline to records, rounded down, 0 if none.
func ShrinkPercent(baseline, records int64) int64 {
	if baseline <= 0 || records >= baseline {
		return 0
	}
	return (baseline - records) * 100 / baseline
}
