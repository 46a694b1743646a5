package scheduler

import (
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// The lazy heap always returns the best member (highest score, then lowest
// index), whatever mix of pushes, updates and removals came before.
func TestPropertyCandidatesTopIsBest(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const n = 40
		h := newCandidates(n)
		member := map[int32]int64{}
		score := rapid.Int64Range(-5, 5) // small range: many ties
		node := rapid.Int32Range(0, n-1)
		for range rapid.IntRange(1, 200).Draw(t, "ops") {
			switch op := rapid.IntRange(0, 5).Draw(t, "op"); {
			case op <= 1: // push or pushBest a new member
				i := node.Draw(t, "i")
				if h.has(i) {
					continue
				}
				s := score.Draw(t, "s")
				if op == 0 {
					h.push(i, s)
				} else {
					h.pushBest(i, s)
				}
				member[i] = s
			case op == 2: // insert into an ordered heap (as refresh does)
				i := node.Draw(t, "i")
				if h.has(i) {
					continue
				}
				h.init()
				s := score.Draw(t, "s")
				h.insert(i, s)
				member[i] = s
			case op == 3 && len(member) > 0: // update, often the top
				i := h.top()
				if rapid.Bool().Draw(t, "notTop") {
					i = rapid.SampledFrom(keys(member)).Draw(t, "i")
				}
				s := score.Draw(t, "s")
				h.update(i, s)
				member[i] = s
			case op == 4 && len(member) > 0:
				i := rapid.SampledFrom(keys(member)).Draw(t, "i")
				h.remove(i)
				delete(member, i)
			case op == 5 && rapid.IntRange(0, 9).Draw(t, "reset") == 0:
				h.reset()
				clear(member)
			}
			if h.len() != len(member) {
				t.Fatalf("len %d, want %d", h.len(), len(member))
			}
			if len(member) == 0 {
				continue
			}
			best := int32(-1)
			for i, s := range member {
				if best < 0 || s > member[best] || (s == member[best] && i < best) {
					best = i
				}
			}
			if got := h.top(); got != best {
				t.Fatalf("top %d (score %d), want %d (score %d)", got, member[got], best, member[best])
			}
		}
	})
}

// keys returns the members sorted, so that draws are reproducible.
func keys(m map[int32]int64) []int32 { return slices.Sorted(maps.Keys(m)) }
