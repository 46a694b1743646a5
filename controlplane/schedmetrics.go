package controlplane

import (
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/metrics"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

type schedMetrics struct{ m *metrics.Scheduler }

// evaluated records one evaluation: its latency (compute and commit), the apps
// left pending, and a failed placement per pending app by main reason.
func (s schedMetrics) evaluated(ev evaluation, d time.Duration) {
	if s.m == nil {
		return
	}
	s.m.Evaluation.Observe(d.Seconds())
	s.m.Pending.Set(float64(len(ev.unplaced)))
	if ev.plan == nil {
		return // nothing changed since the last evaluation
	}
	for _, why := range ev.unplaced {
		s.m.FailedPlacements.WithLabelValues(mainReason(why)).Inc()
	}
}

// committed records the outcome of one ApplyPlan command.
func (s schedMetrics) committed(plan *atollv1.ApplyPlanCmd, err error) {
	if s.m == nil {
		return
	}
	if status.Code(err) == codes.Aborted {
		s.m.PlanRejections.Inc()
		return
	}
	if err != nil {
		return
	}
	s.m.Placements.Add(float64(len(plan.Place)))
	s.m.Stops.Add(float64(len(plan.Stop)))
}

// mainReason extracts the first reason of "0/3 nodes available: 2 insufficient memory, 1 draining"
// (also behind a prefix such as "cannot move off a draining node: ").
func mainReason(why string) string {
	const marker = "nodes available: "
	k := strings.Index(why, marker)
	if k < 0 {
		return "other"
	}
	first, _, _ := strings.Cut(why[k+len(marker):], ",")
	first = strings.TrimSpace(first)
	if i := strings.IndexByte(first, ' '); i > 0 {
		first = first[i+1:]
	}
	return first
}
