package main

import (
	"log/slog"
	"math"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memoryLimitRatio is the share of the container's memory limit the Go heap
// aims to stay under: the rest is for stacks, the runtime and what the
// collector has not returned yet.
const memoryLimitRatio = 0.9

// setMemoryLimit sets the Go runtime's soft memory limit (GOMEMLIMIT) to 90 %
// of the container's cgroup memory limit, so the collector works harder as
// the profile store nears the limit instead of letting the heap double past
// it and the kernel kill the manager. A GOMEMLIMIT set in the environment
// wins; without a cgroup limit (a local process) nothing changes.
func setMemoryLimit() {
	limit, err := memlimit.Set(
		memlimit.WithRatio(memoryLimitRatio),
		memlimit.WithProvider(memlimit.FromCgroup),
		memlimit.WithLogger(slog.New(slog.DiscardHandler)),
	)
	switch {
	case err != nil:
		setupLog.Info("no container memory limit found: GOMEMLIMIT not set", "reason", err.Error())
	case limit == math.MaxInt64:
		setupLog.Info("no memory limit: GOMEMLIMIT not set")
	default:
		setupLog.Info("GOMEMLIMIT", "bytes", limit, "from", "the container's memory limit × 0.9, unless GOMEMLIMIT was set")
	}
}
