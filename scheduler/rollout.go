package scheduler

import (
	"cmp"
	"slices"
	"strings"
)

// RolloutInstance is one instance of an app that is rolling out a new
// version.
type RolloutInstance struct {
	ID      string
	Version int64
	// Running: the instance runs (it serves traffic).
	Running bool
	// Healthy: an instance of the new version that has been running for the
	// minimum healthy time. A new instance that is not healthy is in flight:
	// starting, not yet proven, or failing.
	Healthy bool
}

// Rollout is one app replacing its instances of older versions with
// instances of Version while keeping Desired replicas serving.
type Rollout struct {
	Desired int
	Version int64
	// StopFirst: an old instance stops before its replacement is placed (no
	// extra instance ever runs; one replica is missing while it starts).
	// Otherwise the rollout is start-first: one extra instance at most, and
	// an old instance stops only once a new one is healthy.
	StopFirst bool
	// NoRoom: the last step's new instance could not be placed (no node has
	// room for it). A start-first rollout then makes room the stop-first
	// way, one old instance at a time.
	NoRoom    bool
	Instances []RolloutInstance
}

// RolloutStep is what to do now.
type RolloutStep struct {
	// Stop lists the old instances to stop now: every one that does not
	// run (it serves nothing), and running ones a healthy new instance
	// replaces (or that make room, stop-first).
	Stop []string
	// Target is the number of instances of the new version wanted now;
	// Schedule places the missing ones (Request.Replicas).
	Target int
}

// PlanRollout decides the next step of a rolling update. It is pure and
// deterministic; it is called again on every change (an instance became
// healthy or failed, an update, a stop committed).
//
// Start-first (the default): one new instance at a time is in flight; when
// it is healthy an old instance stops and the next new one starts, so
// Desired instances keep serving and Desired+1 run at most. A new instance
// that never becomes healthy (image missing, crash loop) halts the rollout
// where it is: no more new ones, no more old ones stopped. Old instances of
// the oldest versions stop first (a newer update supersedes a halted
// rollout: the failed new instances are old then, and as they do not run
// they are stopped at once).
//
// Stop-first: when no new instance is in flight, one old instance stops;
// once that stop is committed its replacement is placed; when that one is
// healthy, the next. Desired-1 instances serve during the rollout.
func PlanRollout(r Rollout) RolloutStep {
	var step RolloutStep
	var serving []RolloutInstance
	newAll, healthy := 0, 0
	for _, in := range r.Instances {
		switch {
		case in.Version == r.Version:
			newAll++
			if in.Healthy && in.Running {
				healthy++
			}
		case in.Running:
			serving = append(serving, in)
		default:
			step.Stop = append(step.Stop, in.ID)
		}
	}
	slices.Sort(step.Stop)
	slices.SortFunc(serving, func(a, b RolloutInstance) int {
		return cmp.Or(cmp.Compare(a.Version, b.Version), strings.Compare(a.ID, b.ID))
	})
	d := max(r.Desired, 0)
	inFlight := newAll - healthy
	n := max(0, healthy+len(serving)-d) // replaced by healthy new instances
	makeRoom := (r.StopFirst || r.NoRoom) && inFlight == 0 && len(serving) > n && healthy+len(serving)-n >= d
	if makeRoom {
		n++
	}
	for _, in := range serving[:n] {
		step.Stop = append(step.Stop, in.ID)
	}
	left := len(serving) - n
	switch {
	case makeRoom:
		// Place the replacement once the stop is committed: its resources
		// (and its volume) are free only then.
		step.Target = newAll
	case r.StopFirst || r.NoRoom:
		step.Target = min(d, d-left)
	default:
		step.Target = min(d, max(healthy+1, d-left))
	}
	// New instances already placed stay (stopping one that is starting only
	// to place it again is churn), up to Desired.
	step.Target = max(step.Target, min(newAll, d), 0)
	return step
}
