package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// ffd is the reference first-fit-decreasing packer: expand every request
// into replicas, sort them by dominant share of one node (largest first, ties
// by app id), and put each on the first node, in input order, where it fits
// in every dimension. It returns how many nodes it used and how many
// replicas it placed.
func ffd(nodes []Node, reqs []Request) (usedNodes, placed int) {
	type item struct {
		app  string
		r    Resources
		size float64
	}
	var items []item
	for _, q := range reqs {
		var size float64
		a := nodes[0].Allocatable
		for d := range 3 {
			if tot := a.Get(Dimension(d)); tot > 0 {
				size = max(size, float64(q.Resources.Get(Dimension(d)))/float64(tot))
			}
		}
		for range q.Replicas {
			items = append(items, item{q.AppID, q.Resources, size})
		}
	}
	slices.SortStableFunc(items, func(a, b item) int {
		if a.size != b.size {
			return cmp.Compare(b.size, a.size)
		}
		return strings.Compare(a.app, b.app)
	})
	free := make([]Resources, len(nodes))
	used := make([]bool, len(nodes))
	for i := range nodes {
		free[i] = nodes[i].Allocatable
	}
	for _, it := range items {
		for i := range free {
			if it.r.Fits(free[i]) {
				free[i] = free[i].Sub(it.r)
				if !used[i] {
					used[i] = true
					usedNodes++
				}
				placed++
				break
			}
		}
	}
	return usedNodes, placed
}

// (b) On a cluster of identical empty nodes, bin-pack never uses more nodes
// than first-fit-decreasing by more than 1.5x + 1, and places everything
// whenever FFD does. (With nodes of different sizes node counts are not
// comparable: bin-pack prefers filling a small node to starting a large one,
// on purpose.)
func TestPropertyBinPackCloseToFFD(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		size := Resources{
			CPU:       rapid.SampledFrom([]int64{2000, 4000, 8000, 16000}).Draw(t, "cpu"),
			MemoryMB:  rapid.SampledFrom([]int64{4096, 8192, 32768}).Draw(t, "mem"),
			StorageMB: rapid.SampledFrom([]int64{0, 20000, 100000}).Draw(t, "sto"),
		}
		nNodes := rapid.IntRange(1, 60).Draw(t, "nodes")
		var nodes []Node
		for i := range nNodes {
			nodes = append(nodes, node(fmt.Sprintf("n%02d", i), size))
		}
		var reqs []Request
		for i := range rapid.IntRange(1, 12).Draw(t, "requests") {
			r := Resources{
				CPU:      rapid.Int64Range(1, size.CPU).Draw(t, "rcpu"),
				MemoryMB: rapid.Int64Range(0, size.MemoryMB).Draw(t, "rmem"),
			}
			if size.StorageMB > 0 {
				r.StorageMB = rapid.Int64Range(0, size.StorageMB/2).Draw(t, "rsto")
			}
			// Mostly small requests, as in real clusters.
			if rapid.Bool().Draw(t, "small") {
				r = Resources{CPU: r.CPU/8 + 1, MemoryMB: r.MemoryMB / 8, StorageMB: r.StorageMB / 8}
			}
			reqs = append(reqs, Request{AppID: fmt.Sprintf("app%02d", i), Replicas: rapid.IntRange(1, 30).Draw(t, "replicas"), Resources: r})
		}
		total := 0
		for _, r := range reqs {
			total += r.Replicas
		}
		p, err := Schedule(Input{Nodes: nodes, Requests: reqs}, Options{Seed: rapid.Int64().Draw(t, "seed")})
		if err != nil {
			t.Fatal(err)
		}
		ffdNodes, ffdPlaced := ffd(nodes, reqs)
		bpNodes := len(placedOn(p))
		if ffdPlaced == total && len(p.Placements) != total {
			t.Fatalf("FFD placed all %d replicas, bin-pack only %d (%+v)", total, len(p.Placements), p.Unplaced)
		}
		if len(p.Placements) == total && float64(bpNodes) > 1.5*float64(ffdNodes)+1 {
			t.Fatalf("bin-pack used %d nodes, FFD %d", bpNodes, ffdNodes)
		}
	})
}

// Spread, by contrast, uses as many nodes as it can: the test above would
// fail for it, which shows it measures something.
func TestSpreadUsesMoreNodesThanFFD(t *testing.T) {
	var nodes []Node
	for i := range 10 {
		nodes = append(nodes, node(fmt.Sprintf("n%d", i), res(4000, 8192, 0)))
	}
	reqs := []Request{{AppID: "a", Replicas: 10, Resources: res(500, 512, 0), Strategy: Spread}}
	p := mustSchedule(t, Input{Nodes: nodes, Requests: reqs}, Options{})
	ffdNodes, _ := ffd(nodes, reqs)
	if got := len(placedOn(p)); ffdNodes != 2 || got != 10 {
		t.Fatalf("spread used %d nodes, FFD %d; want 10 and 2", got, ffdNodes)
	}
}
