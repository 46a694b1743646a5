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

func (s schedMetrics) observe(plan *atollv1.ApplyPlanCmd, d time.Duration, err error) {
	if s.m == nil {
		return
	}
	s.m.Evaluation.Observe(d.Seconds())
	if status.Code(err) == codes.Aborted {
		s.m.PlanRejections.Inc()
		return
	}
	if err != nil {
		return
	}
	s.m.Placements.Add(float64(len(plan.Place)))
	s.m.Stops.Add(float64(len(plan.Stop)))
	s.m.Pending.Set(float64(len(plan.Unplaced)))
	for _, why := range plan.Unplaced {
		s.m.FailedPlacements.WithLabelValues(mainReason(why)).Inc()
	}
}

// mainReason extracts the first reason of "0/3 nodes available: 2 insufficient memory, 1 draining".
func mainReason(why string) string {
	_, rest, ok := strings.Cut(why, ": ")
	if !ok {
		return "other"
	}
	first, _, _ := strings.Cut(rest, ",")
	first = strings.TrimSpace(first)
	if i := strings.IndexByte(first, ' '); i > 0 {
		first = first[i+1:]
	}
	return first
}
