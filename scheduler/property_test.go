package scheduler

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// genInput draws a small random cluster, existing allocations (some on down,
// draining or unknown nodes, some overcommitting) and requests (some
// invalid), plus options.
func genInput(t *rapid.T) (Input, Options) {
	var in Input
	nNodes := rapid.IntRange(0, 12).Draw(t, "nodes")
	for i := range nNodes {
		n := Node{
			ID:     fmt.Sprintf("n%d", i),
			Status: rapid.SampledFrom([]NodeStatus{NodeReady, NodeReady, NodeReady, NodeReady, NodeDraining, NodeDown}).Draw(t, "status"),
			Allocatable: Resources{
				CPU:       rapid.SampledFrom([]int64{0, 500, 1000, 2000, 4000}).Draw(t, "cpu"),
				MemoryMB:  rapid.SampledFrom([]int64{0, 512, 1024, 4096}).Draw(t, "mem"),
				StorageMB: rapid.SampledFrom([]int64{0, 1000, 10000}).Draw(t, "sto"),
			},
			Labels: map[string]string{},
		}
		n.Capacity = n.Allocatable.Add(res(100, 100, 100))
		if z := rapid.SampledFrom([]string{"", "a", "b", "c"}).Draw(t, "zone"); z != "" {
			n.Labels["zone"] = z
		}
		if d := rapid.SampledFrom([]string{"", "ssd", "hdd"}).Draw(t, "disk"); d != "" {
			n.Labels["disk"] = d
		}
		in.Nodes = append(in.Nodes, n)
	}
	apps := []string{"app0", "app1", "app2", "app3", "app4", "app5", "app6", "app7", "other"}
	nodeIDs := []string{"ghost"}
	for _, n := range in.Nodes {
		nodeIDs = append(nodeIDs, n.ID)
	}
	portSets := [][]HostPort{nil, nil, nil, {{Port: 80}}, {{Port: 80}, {Port: 53, Protocol: UDP}}, {{Port: 53}}}
	for i := range rapid.IntRange(0, 20).Draw(t, "allocs") {
		in.Allocations = append(in.Allocations, Allocation{
			ID:     fmt.Sprintf("alloc%d", i),
			AppID:  rapid.SampledFrom(apps).Draw(t, "allocApp"),
			NodeID: rapid.SampledFrom(nodeIDs).Draw(t, "allocNode"),
			Resources: Resources{
				CPU:       rapid.SampledFrom([]int64{0, 100, 500, 1000}).Draw(t, "acpu"),
				MemoryMB:  rapid.SampledFrom([]int64{0, 64, 256, 1024}).Draw(t, "amem"),
				StorageMB: rapid.SampledFrom([]int64{0, 100, 1000}).Draw(t, "asto"),
			},
			HostPorts: rapid.SampledFrom(portSets).Draw(t, "aports"),
		})
	}
	constraintPool := []string{"zone=a", "zone!=b", "zone in (a,b)", "zone notin (c)", "disk=ssd", "disk notin (hdd)", "zone in (x)"}
	for _, app := range rapid.SliceOfNDistinct(rapid.SampledFrom(apps[:8]), 0, 8, rapid.ID[string]).Draw(t, "reqApps") {
		r := Request{
			AppID:    app,
			Replicas: rapid.IntRange(0, 8).Draw(t, "replicas"),
			Resources: Resources{
				CPU:       rapid.SampledFrom([]int64{0, 100, 250, 500, 1000, 3000}).Draw(t, "rcpu"),
				MemoryMB:  rapid.SampledFrom([]int64{0, 64, 256, 1024}).Draw(t, "rmem"),
				StorageMB: rapid.SampledFrom([]int64{0, 100, 5000}).Draw(t, "rsto"),
			},
			HostPorts:  rapid.SampledFrom(portSets).Draw(t, "rports"),
			MaxPerNode: rapid.SampledFrom([]int{0, 0, 1, 2, 3}).Draw(t, "maxPerNode"),
			Strategy:   rapid.SampledFrom([]Strategy{BinPack, Spread}).Draw(t, "strategy"),
		}
		for _, s := range rapid.SliceOfNDistinct(rapid.SampledFrom(constraintPool), 0, 2, rapid.ID[string]).Draw(t, "constraints") {
			c, err := ParseConstraint(s)
			if err != nil {
				t.Fatal(err)
			}
			r.Constraints = append(r.Constraints, c)
		}
		// Often the same shape as the previous request (heap reuse path).
		if k := len(in.Requests); k > 0 && rapid.IntRange(0, 2).Draw(t, "sameShape") == 0 {
			prev := in.Requests[k-1]
			r.Resources, r.Constraints, r.HostPorts, r.MaxPerNode, r.Strategy = prev.Resources, prev.Constraints, prev.HostPorts, prev.MaxPerNode, prev.Strategy
		}
		if rapid.IntRange(0, 19).Draw(t, "invalid") == 0 {
			r.Replicas = -1
		}
		in.Requests = append(in.Requests, r)
	}
	opts := Options{
		Seed:       rapid.Int64().Draw(t, "seed"),
		SampleSize: rapid.SampledFrom([]int{0, 0, 0, 1, 2, 4}).Draw(t, "sample"),
	}
	return in, opts
}

func TestPropertyPlanInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in, opts := genInput(t)
		p, err := Schedule(in, opts)
		if err != nil {
			t.Fatalf("Schedule: %v", err)
		}
		checkPlan(t, in, p)
	})
}

// checkPlan asserts the invariants every plan must satisfy.
func checkPlan(t *rapid.T, in Input, p Plan) {
	nodes := map[string]*Node{}
	for i := range in.Nodes {
		nodes[in.Nodes[i].ID] = &in.Nodes[i]
	}
	reqs := map[string]*Request{}
	for i := range in.Requests {
		reqs[in.Requests[i].AppID] = &in.Requests[i]
	}
	live := func(id string) bool {
		n := nodes[id]
		return n != nil && (n.Status == NodeReady || n.Status == NodeDraining)
	}
	used := map[string]Resources{}
	ports := map[string]map[uint32]int{}
	appOn := map[[2]string]int{}
	addPorts := func(nodeID string, hp []HostPort) {
		if ports[nodeID] == nil {
			ports[nodeID] = map[uint32]int{}
		}
		for _, p := range hp {
			ports[nodeID][p.key()]++
		}
	}
	for _, a := range in.Allocations {
		if live(a.NodeID) {
			used[a.NodeID] = used[a.NodeID].Add(a.Resources)
			addPorts(a.NodeID, a.HostPorts)
			appOn[[2]string{a.AppID, a.NodeID}]++
		}
	}
	existingPorts := map[string]map[uint32]int{}
	for id, m := range ports {
		existingPorts[id] = maps.Clone(m)
	}
	placed := map[string]int{}
	for _, pl := range p.Placements {
		n, r := nodes[pl.NodeID], reqs[pl.AppID]
		if n == nil || r == nil {
			t.Fatalf("placement %+v on unknown node or app", pl)
		}
		// (d) only READY nodes receive placements.
		if n.Status != NodeReady {
			t.Fatalf("placement of %s on %s node %s", pl.AppID, n.Status, n.ID)
		}
		// (e) constraints hold.
		for _, c := range r.Constraints {
			if !c.Matches(n.Labels) {
				t.Fatalf("placement of %s on %s violates %s (labels %v)", pl.AppID, n.ID, c, n.Labels)
			}
		}
		if pl.Resources != r.Resources || !slices.Equal(pl.HostPorts, r.HostPorts) {
			t.Fatalf("placement %+v does not carry the request's resources and ports", pl)
		}
		used[n.ID] = used[n.ID].Add(pl.Resources)
		addPorts(n.ID, pl.HostPorts)
		appOn[[2]string{pl.AppID, n.ID}]++
		placed[pl.AppID]++
	}
	for _, pl := range p.Placements {
		n, r := nodes[pl.NodeID], reqs[pl.AppID]
		// (a) never overcommitted: existing allocations + placements <= allocatable.
		if !used[n.ID].Fits(n.Allocatable) {
			t.Fatalf("node %s overcommitted: used %v > allocatable %v", n.ID, used[n.ID], n.Allocatable)
		}
		for _, hp := range pl.HostPorts {
			if ports[n.ID][hp.key()] > 1 && existingPorts[n.ID][hp.key()] <= 1 {
				t.Fatalf("host port %s placed twice on %s", hp, n.ID)
			}
		}
		if r.MaxPerNode > 0 && appOn[[2]string{r.AppID, n.ID}] > r.MaxPerNode {
			t.Fatalf("%d replicas of %s on %s, max %d", appOn[[2]string{r.AppID, n.ID}], r.AppID, n.ID, r.MaxPerNode)
		}
	}

	// Replica accounting per request.
	stops := map[string]map[StopReason]int{}
	stopped := map[string]bool{}
	for _, s := range p.Stops {
		if stopped[s.AllocationID] {
			t.Fatalf("allocation %s stopped twice", s.AllocationID)
		}
		stopped[s.AllocationID] = true
		if stops[s.AppID] == nil {
			stops[s.AppID] = map[StopReason]int{}
		}
		stops[s.AppID][s.Reason]++
	}
	unplaced := map[string]Unplaced{}
	for _, u := range p.Unplaced {
		unplaced[u.AppID] = u
		if u.Reasons.Invalid != "" {
			continue
		}
		e := u.Reasons
		sum := e.Available
		for _, f := range e.Failures {
			sum += f.Nodes
		}
		if e.Available != 0 || e.Nodes != len(in.Nodes) || sum != e.Nodes || u.Missing <= 0 {
			t.Fatalf("unplaced %s: bad explanation %+v (missing %d)", u.AppID, e, u.Missing)
		}
	}
	for _, r := range in.Requests {
		var ready, draining, lost int
		for _, a := range in.Allocations {
			if a.AppID != r.AppID {
				continue
			}
			switch n := nodes[a.NodeID]; {
			case n == nil || (n.Status != NodeReady && n.Status != NodeDraining):
				lost++
			case n.Status == NodeReady:
				ready++
			default:
				draining++
			}
		}
		st := stops[r.AppID]
		if r.Validate() != nil {
			if placed[r.AppID] != 0 || len(st) != 0 || unplaced[r.AppID].Reasons.Invalid == "" {
				t.Fatalf("invalid request %s was acted on", r.AppID)
			}
			continue
		}
		if st[StopNodeDown]+st[StopNodeUnknown] != lost {
			t.Fatalf("%s: %d lost allocations, %v stopped", r.AppID, lost, st)
		}
		missing := unplaced[r.AppID].Missing
		if ready >= r.Replicas {
			if placed[r.AppID] != 0 || missing != 0 || st[StopScaleDown] != ready-r.Replicas || st[StopNodeDraining] != draining {
				t.Fatalf("%s: ready %d, want %d: placed %d, missing %d, stops %v", r.AppID, ready, r.Replicas, placed[r.AppID], missing, st)
			}
			continue
		}
		if st[StopScaleDown] != 0 || placed[r.AppID]+missing != r.Replicas-ready ||
			st[StopNodeDraining] != draining-min(draining, missing) {
			t.Fatalf("%s: ready %d draining %d, want %d: placed %d, missing %d, stops %v", r.AppID, ready, draining, r.Replicas, placed[r.AppID], missing, st)
		}
	}
}

// (c) Same input and seed -> identical plan, also when the input slices are
// given in another order.
func TestPropertyDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in, opts := genInput(t)
		p1, err := Schedule(in, opts)
		if err != nil {
			t.Fatal(err)
		}
		p2, _ := Schedule(in, opts)
		if !reflect.DeepEqual(p1, p2) {
			t.Fatalf("two runs differ:\n%+v\n%+v", p1, p2)
		}
		noReuse := opts
		noReuse.noReuse = true
		if p4, _ := Schedule(in, noReuse); !reflect.DeepEqual(p1, p4) {
			t.Fatalf("heap reuse changed the plan:\n%+v\n%+v", p1, p4)
		}
		shuffled := Input{
			Nodes:       rapid.Permutation(in.Nodes).Draw(t, "nodes"),
			Allocations: rapid.Permutation(in.Allocations).Draw(t, "allocs"),
			Requests:    rapid.Permutation(in.Requests).Draw(t, "reqs"),
		}
		p3, _ := Schedule(shuffled, opts)
		if !reflect.DeepEqual(p1, p3) {
			t.Fatalf("permuted input changed the plan:\n%+v\n%+v", p1, p3)
		}
	})
}

// The fused hot-loop checks and scores agree with the Filter and Scorer
// types, for any state reached by allocations and placements.
func TestFastPathMatchesFiltersAndScorers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in, opts := genInput(t)
		c, err := newCluster(in.Nodes, opts.Seed)
		if err != nil {
			t.Fatal(err)
		}
		reqs, err := indexRequests(in.Requests)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.addAllocations(in.Allocations, reqs); err != nil {
			t.Fatal(err)
		}
		if len(c.nodes) > 0 {
			for range rapid.IntRange(0, 6).Draw(t, "extra") {
				i := int32(rapid.IntRange(0, len(c.nodes)-1).Draw(t, "extraNode"))
				c.use(i, res(rapid.Int64Range(0, 2000).Draw(t, "xc"), rapid.Int64Range(0, 2000).Draw(t, "xm"), 0), rapid.SampledFrom([][]HostPort{nil, {{Port: 80}}}).Draw(t, "xp"))
			}
		}
		for _, st := range reqs.list {
			if st.invalid != nil {
				continue
			}
			for _, k := range st.ready {
				c.countApp(c.index[in.Allocations[k].NodeID])
			}
			if len(c.nodes) > 0 {
				c.countApp(int32(rapid.IntRange(0, len(c.nodes)-1).Draw(t, "bump")))
			}
			var cr compiled
			c.compile(st.req, &cr)
			filters := FiltersFor(st.req)
			scorer := ScorerFor(st.req.Strategy)
			for i := range c.nodes {
				ni := c.nodeInfo(int32(i))
				want := true
				for _, f := range filters {
					if !f.Check(&ni) {
						want = false
						break
					}
				}
				if got := c.feasible(int32(i), &cr); got != want {
					t.Fatalf("node %s, app %s: fast path feasible=%v, filters=%v", ni.Node.ID, st.req.AppID, got, want)
				}
				if want {
					if got, want := c.score(int32(i), &cr), scorer.Score(&ni, st.req.Resources); got != want {
						t.Fatalf("node %s: fast score %d, scorer %d", ni.Node.ID, got, want)
					}
				}
			}
			c.resetAppCounts()
		}
	})
}

// Requests of the same shape share one heap (only the nodes the previous
// request touched are refreshed); the plan must be exactly the one a fresh
// scan per request gives.
func TestPropertyHeapReuseMatchesFreshHeap(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in, opts := genInput(t)
		opts.SampleSize = 0
		for i := range in.Requests {
			r := &in.Requests[i]
			if i > 0 && rapid.Bool().Draw(t, "shapeOfFirst") {
				f := in.Requests[0]
				r.Resources, r.Constraints, r.HostPorts, r.Strategy, r.MaxPerNode = f.Resources, f.Constraints, f.HostPorts, f.Strategy, f.MaxPerNode
			}
		}
		p1, err := Schedule(in, opts)
		if err != nil {
			t.Fatal(err)
		}
		checkPlan(t, in, p1)
		opts.noReuse = true
		p2, _ := Schedule(in, opts)
		if !reflect.DeepEqual(p1, p2) {
			t.Fatalf("heap reuse changed the plan:\n%+v\n%+v", p1, p2)
		}
	})
}
