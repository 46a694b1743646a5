package scheduler

// Scorer ranks feasible nodes for one replica; higher is better. Ties are
// broken by a seeded hash of the node id, never by input or map order.
//
// Like filters, scorers have a fused copy in the hot loop (cluster.score);
// both call the same arithmetic (allocatedPPM), and
// TestFastPathMatchesScorers keeps them in agreement.
type Scorer interface {
	Name() string
	// Score rates placing one replica needing need on n.
	Score(n *NodeInfo, need Resources) int64
}

// ScorerFor returns the scorer of a strategy (BinPack for unknown values).
func ScorerFor(s Strategy) Scorer {
	if s == Spread {
		return SpreadScorer{}
	}
	return BinPackScorer{}
}

// BinPackScorer prefers the node that will be the most allocated after the
// placement: the sum over cpu, memory and storage of used/allocatable, in
// parts per million (the Kubernetes MostAllocated rule). Filling nodes up
// keeps other nodes whole for large requests and lets idle ones be drained.
type BinPackScorer struct{}

func (BinPackScorer) Name() string { return "binpack" }
func (BinPackScorer) Score(n *NodeInfo, need Resources) int64 {
	inv := inverse(n.Node.Allocatable)
	return allocatedPPM(n.Node.Allocatable.Sub(n.Free).Add(need), &inv)
}

// SpreadScorer prefers the node with the fewest replicas of the app, then
// the least allocated one after the placement.
type SpreadScorer struct{}

func (SpreadScorer) Name() string { return "spread" }
func (SpreadScorer) Score(n *NodeInfo, need Resources) int64 {
	inv := inverse(n.Node.Allocatable)
	return spreadScore(n.AppReplicas, allocatedPPM(n.Node.Allocatable.Sub(n.Free).Add(need), &inv))
}

// spreadScore orders by replica count first: allocatedPPM is at most 3e6 for
// a feasible placement, far below 1<<32.
func spreadScore(appReplicas int, ppm int64) int64 {
	return -int64(appReplicas)<<32 - ppm
}

// invAlloc holds 1e6/allocatable per dimension (0 for an empty dimension),
// so scoring multiplies instead of dividing.
type invAlloc [3]float64

func inverse(a Resources) invAlloc {
	var inv invAlloc
	for d, v := range [3]int64{a.CPU, a.MemoryMB, a.StorageMB} {
		if v > 0 {
			inv[d] = 1e6 / float64(v)
		}
	}
	return inv
}

// allocatedPPM is the sum over dimensions of used/allocatable in parts per
// million. The explicit float64 conversions forbid fused multiply-adds, so
// the result is the same on every platform.
func allocatedPPM(used Resources, inv *invAlloc) int64 {
	c := float64(float64(used.CPU) * inv[0])
	m := float64(float64(used.MemoryMB) * inv[1])
	s := float64(float64(used.StorageMB) * inv[2])
	return int64(c + m + s)
}
