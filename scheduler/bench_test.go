package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// benchCluster builds nodes of mixed sizes (4/8/16/32 cores, 4 GiB and
// 50 GB per core, minus a host reserve), labelled with a zone and a disk
// type.
func benchCluster(rng *rand.Rand, n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		cores := []int64{4, 8, 16, 32}[rng.IntN(4)]
		capacity := res(cores*1000, cores*4096, cores*50_000)
		disk := "ssd"
		if rng.IntN(10) < 4 {
			disk = "hdd"
		}
		nodes[i] = Node{
			ID:          fmt.Sprintf("node-%05d", i),
			Status:      NodeReady,
			Capacity:    capacity,
			Allocatable: capacity.Sub(res(500, 1024, 10_000)),
			Labels:      map[string]string{"zone": []string{"a", "b", "c"}[rng.IntN(3)], "disk": disk},
		}
	}
	return nodes
}

func weighted[T any](rng *rand.Rand, values []T, weights []int) T {
	total := 0
	for _, w := range weights {
		total += w
	}
	x := rng.IntN(total)
	for i, w := range weights {
		if x < w {
			return values[i]
		}
		x -= w
	}
	return values[len(values)-1]
}

// benchRequests draws apps until they add up to `instances` replicas:
// 100m-2000m CPU, 64Mi-4Gi memory, mostly small; half the apps have 1-5
// replicas, some hundreds. A third have a constraint, a quarter spread, a
// few bind a host port or cap replicas per node. maxReplicas 1 makes every
// app a single replica (the worst case: one full scan per placement).
func benchRequests(rng *rand.Rand, instances, maxReplicas int) []Request {
	var reqs []Request
	constraints := [][]Constraint{
		{{Key: "disk", Op: OpEqual, Values: []string{"ssd"}}},
		{{Key: "zone", Op: OpIn, Values: []string{"a", "b"}}},
		{{Key: "zone", Op: OpNotEqual, Values: []string{"c"}}},
	}
	for total := 0; total < instances; {
		replicas := weighted(rng, []int{1 + rng.IntN(5), 10 + rng.IntN(91), 100 + rng.IntN(301)}, []int{50, 40, 10})
		replicas = min(replicas, maxReplicas, instances-total)
		r := Request{
			AppID:    fmt.Sprintf("app-%06d", len(reqs)),
			Replicas: replicas,
			Resources: Resources{
				CPU:       weighted(rng, []int64{100, 250, 500, 1000, 2000}, []int{25, 25, 20, 20, 10}),
				MemoryMB:  weighted(rng, []int64{64, 128, 256, 512, 1024, 2048, 4096}, []int{15, 20, 25, 20, 10, 7, 3}),
				StorageMB: weighted(rng, []int64{0, 1024, 10_240}, []int{50, 40, 10}),
			},
		}
		switch x := rng.IntN(100); {
		case x < 15:
			r.Constraints = constraints[0]
		case x < 25:
			r.Constraints = constraints[1]
		case x < 30:
			r.Constraints = constraints[2]
		}
		if rng.IntN(4) == 0 {
			r.Strategy = Spread
		}
		if rng.IntN(10) == 0 {
			r.MaxPerNode = 2
		}
		if rng.IntN(100) == 0 {
			r.HostPorts = []HostPort{{Port: uint16(8000 + len(reqs)%1000)}}
		}
		reqs = append(reqs, r)
		total += replicas
	}
	return reqs
}

func benchInput(maxReplicas int) Input {
	rng := rand.New(rand.NewPCG(1, 2))
	return Input{Nodes: benchCluster(rng, 5000), Requests: benchRequests(rng, 100_000, maxReplicas)}
}

// runSchedule times Schedule over b.N runs, then makes one more, untimed
// run with a per-decision hook to measure decision latencies.
func runSchedule(b *testing.B, in Input, opts Options) {
	var placed, unplaced int
	var elapsed time.Duration
	for b.Loop() {
		start := time.Now()
		p, err := Schedule(in, opts)
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		placed = len(p.Placements)
		unplaced = 0
		for _, u := range p.Unplaced {
			unplaced += u.Missing
		}
	}
	b.StopTimer()
	lat := decisionLatencies(in, opts)
	b.ReportMetric(float64(placed)*float64(b.N)/elapsed.Seconds(), "placements/s")
	b.ReportMetric(float64(percentile(lat, 0.50).Nanoseconds()), "p50-ns/decision")
	b.ReportMetric(float64(percentile(lat, 0.99).Nanoseconds()), "p99-ns/decision")
	b.ReportMetric(float64(percentile(lat, 1).Microseconds()), "max-µs/decision")
	b.ReportMetric(float64(placed), "placed")
	b.ReportMetric(float64(unplaced), "unplaced")
}

// decisionLatencies runs Schedule once with a hook stamping every replica
// decision; the first one includes building the cluster view.
func decisionLatencies(in Input, opts Options) []time.Duration {
	stamps := make([]time.Duration, 0, 110_000)
	start := time.Now()
	opts.onDecision = func() { stamps = append(stamps, time.Since(start)) }
	if _, err := Schedule(in, opts); err != nil {
		panic(err)
	}
	lat := make([]time.Duration, len(stamps))
	prev := time.Duration(0)
	for i, s := range stamps {
		lat[i], prev = s-prev, s
	}
	return lat
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// BenchmarkSchedule100kOn5kNodes places 100,000 replicas of ~2,000 apps on
// 5,000 empty nodes of mixed sizes, scoring every feasible node.
func BenchmarkSchedule100kOn5kNodes(b *testing.B) {
	runSchedule(b, benchInput(1<<30), Options{Seed: 42})
}

// BenchmarkSchedule100kSingleReplicaApps is the worst case for per-request
// work: 100,000 apps of one replica each, each a full scan of 5,000 nodes,
// scoring all feasible nodes and, second, a sample of 200.
func BenchmarkSchedule100kSingleReplicaApps(b *testing.B) {
	in := benchInput(1)
	b.Run("sample=all", func(b *testing.B) { runSchedule(b, in, Options{Seed: 42}) })
	b.Run("sample=200", func(b *testing.B) { runSchedule(b, in, Options{Seed: 42, SampleSize: 200}) })
}

// BenchmarkBaselineFullScanBestFit is the naive loop the scheduler is
// measured against: for each of the same 100,000 replicas, scan all 5,000
// nodes and take the READY node that fits with the least CPU left (no
// constraints, ports or spread).
func BenchmarkBaselineFullScanBestFit(b *testing.B) {
	in := benchInput(1 << 30)
	var items []Resources
	for _, r := range in.Requests {
		for range r.Replicas {
			items = append(items, r.Resources)
		}
	}
	free := make([]Resources, len(in.Nodes))
	var placed int
	var elapsed time.Duration
	lat := make([]time.Duration, 0, len(items))
	for b.Loop() {
		lat = lat[:0]
		start := time.Now()
		for i := range in.Nodes {
			free[i] = in.Nodes[i].Allocatable
		}
		placed = 0
		prev := start
		for _, it := range items {
			best := -1
			for i := range in.Nodes {
				f := &free[i]
				if in.Nodes[i].Status == NodeReady && it.CPU <= f.CPU && it.MemoryMB <= f.MemoryMB && it.StorageMB <= f.StorageMB &&
					(best < 0 || f.CPU < free[best].CPU) {
					best = i
				}
			}
			if best >= 0 {
				free[best] = free[best].Sub(it)
				placed++
			}
			now := time.Now()
			lat = append(lat, now.Sub(prev))
			prev = now
		}
		elapsed += time.Since(start)
	}
	b.ReportMetric(float64(placed)*float64(b.N)/elapsed.Seconds(), "placements/s")
	b.ReportMetric(float64(percentile(lat, 0.50).Nanoseconds()), "p50-ns/decision")
	b.ReportMetric(float64(percentile(lat, 0.99).Nanoseconds()), "p99-ns/decision")
	b.ReportMetric(float64(placed), "placed")
}
