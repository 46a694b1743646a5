package scheduler

import (
	"slices"
	"strings"
)

// stop records the stop of allocation k.
func (s *scheduling) stop(k int32, reason StopReason) {
	a := &s.in.Allocations[k]
	s.plan.Stops = append(s.plan.Stops, Stop{AllocationID: a.ID, AppID: a.AppID, NodeID: a.NodeID, Reason: reason})
}

// stopAll stops every allocation in ks, in allocation id order.
func (s *scheduling) stopAll(ks []int32, reason StopReason) {
	if len(ks) == 0 {
		return
	}
	sorted := slices.Clone(ks)
	slices.SortFunc(sorted, func(a, b int32) int {
		return strings.Compare(s.in.Allocations[a].ID, s.in.Allocations[b].ID)
	})
	for _, k := range sorted {
		s.stop(k, reason)
	}
}

// stopMostLoaded stops n of the allocations in ks, one at a time from the
// node that is the most allocated at that moment (counting the stops already
// chosen as gone); on equally loaded nodes the newest allocation first.
func (s *scheduling) stopMostLoaded(ks []int32, n int, reason StopReason) {
	if n <= 0 {
		return
	}
	if n >= len(ks) {
		s.stopAll(ks, reason)
		return
	}
	c := s.c
	left := slices.Clone(ks)
	gone := make(map[int32]Resources)
	for ; n > 0; n-- {
		best, bestLoad := -1, int64(0)
		for j, k := range left {
			a := &s.in.Allocations[k]
			i := c.index[a.NodeID]
			load := allocatedPPM(c.alloc[i].Sub(c.free[i]).Sub(gone[i]), &c.inv[i])
			if best < 0 || load > bestLoad || (load == bestLoad && newer(a, &s.in.Allocations[left[best]])) {
				best, bestLoad = j, load
			}
		}
		k := left[best]
		i := c.index[s.in.Allocations[k].NodeID]
		gone[i] = gone[i].Add(s.in.Allocations[k].Resources)
		s.stop(k, reason)
		left[best] = left[len(left)-1]
		left = left[:len(left)-1]
	}
}

// newer orders the allocations a surplus stop prefers: the newest (highest
// CreateIndex) first, then by id for determinism.
func newer(a, b *Allocation) bool {
	if a.CreateIndex != b.CreateIndex {
		return a.CreateIndex > b.CreateIndex
	}
	return a.ID < b.ID
}
