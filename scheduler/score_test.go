package scheduler

import "testing"

func TestScorers(t *testing.T) {
	n := node("n", res(4000, 8192, 0)) // storage dimension empty: ignored
	info := func(free Resources, appReplicas int) *NodeInfo {
		ni := NewNodeInfo(&n, free, appReplicas, nil)
		return &ni
	}
	need := res(1000, 2048, 0)
	for _, tc := range []struct {
		name string
		s    Scorer
		n    *NodeInfo
		want int64
	}{
		// used after placement = 1000/4000 + 2048/8192 = 0.25 + 0.25
		{"binpack empty node", BinPackScorer{}, info(res(4000, 8192, 0), 0), 500_000},
		// (3000+1000)/4000 + (4096+2048)/8192 = 1 + 0.75
		{"binpack busy node", BinPackScorer{}, info(res(1000, 4096, 0), 0), 1_750_000},
		{"binpack ignores replicas", BinPackScorer{}, info(res(1000, 4096, 0), 5), 1_750_000},
		{"spread empty node", SpreadScorer{}, info(res(4000, 8192, 0), 0), -500_000},
		{"spread busy node", SpreadScorer{}, info(res(1000, 4096, 0), 0), -1_750_000},
		{"spread one replica", SpreadScorer{}, info(res(4000, 8192, 0), 1), -(1 << 32) - 500_000},
	} {
		if got := tc.s.Score(tc.n, need); got != tc.want {
			t.Errorf("%s: Score = %d, want %d", tc.name, got, tc.want)
		}
	}

	// Orderings the strategies promise.
	emptyNode, busyNode := info(res(4000, 8192, 0), 0), info(res(1000, 4096, 0), 0)
	if !(BinPackScorer{}.Score(busyNode, need) > BinPackScorer{}.Score(emptyNode, need)) {
		t.Error("binpack must prefer the fuller node")
	}
	if !(SpreadScorer{}.Score(emptyNode, need) > SpreadScorer{}.Score(busyNode, need)) {
		t.Error("spread must prefer the emptier node")
	}
	busyNoReplica, emptyWithReplica := info(res(1000, 4096, 0), 0), info(res(4000, 8192, 0), 1)
	if !(SpreadScorer{}.Score(busyNoReplica, need) > SpreadScorer{}.Score(emptyWithReplica, need)) {
		t.Error("spread must prefer fewer replicas of the app over a lighter load")
	}
	if ScorerFor(Spread).Name() != "spread" || ScorerFor(BinPack).Name() != "binpack" {
		t.Error("ScorerFor returns the wrong scorer")
	}
}
