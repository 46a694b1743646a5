package scheduler

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestScheduleBinPackFillsOneNodeFirst(t *testing.T) {
	in := Input{
		Nodes: []Node{
			node("n1", res(4000, 8192, 1000)),
			node("n2", res(4000, 8192, 1000)),
			node("n3", res(4000, 8192, 1000)),
		},
		Requests: []Request{{AppID: "web", Replicas: 5, Resources: res(1000, 1024, 0)}},
	}
	p := mustSchedule(t, in, Options{Seed: 1})
	on := placedOn(p)
	if len(p.Placements) != 5 || len(p.Unplaced) != 0 {
		t.Fatalf("plan = %+v", p)
	}
	if len(on) != 2 {
		t.Fatalf("binpack used %d nodes (%v), want 2 (4 + 1)", len(on), on)
	}
	counts := []int{}
	for _, c := range on {
		counts = append(counts, c)
	}
	slices.Sort(counts)
	if !slices.Equal(counts, []int{1, 4}) {
		t.Errorf("per-node counts %v, want [1 4]", counts)
	}
}

func TestScheduleBinPackPrefersAlreadyBusyNode(t *testing.T) {
	in := Input{
		Nodes: []Node{node("idle", res(4000, 8192, 0)), node("busy", res(4000, 8192, 0))},
		Allocations: []Allocation{
			{ID: "x1", AppID: "other", NodeID: "busy", Resources: res(2000, 4096, 0)},
		},
		Requests: []Request{{AppID: "web", Replicas: 2, Resources: res(1000, 1024, 0)}},
	}
	for seed := int64(0); seed < 20; seed++ {
		p := mustSchedule(t, in, Options{Seed: seed})
		if on := placedOn(p); on["busy"] != 2 {
			t.Fatalf("seed %d: placements %v, want both on busy", seed, on)
		}
	}
}

func TestScheduleSpread(t *testing.T) {
	in := Input{
		Nodes: []Node{
			node("n1", res(8000, 16384, 0)),
			node("n2", res(8000, 16384, 0)),
			node("n3", res(8000, 16384, 0)),
		},
		Allocations: []Allocation{
			{ID: "a1", AppID: "web", NodeID: "n1", Resources: res(500, 512, 0)},
			// n2 carries load from another app: spread goes to n3 before n2.
			{ID: "o1", AppID: "other", NodeID: "n2", Resources: res(4000, 8192, 0)},
		},
		Requests: []Request{{AppID: "web", Replicas: 7, Resources: res(500, 512, 0), Strategy: Spread}},
	}
	p := mustSchedule(t, in, Options{})
	on := placedOn(p)
	// 1 existing on n1 + 6 new = 7 replicas: spread evenly = 3,2,2 with the
	// existing replica counted, so n1 gets 1 new, n2 and n3 get... the total
	// per node including the existing one must differ by at most one.
	total := map[string]int{"n1": on["n1"] + 1, "n2": on["n2"], "n3": on["n3"]}
	lo, hi := 99, 0
	for _, c := range total {
		lo, hi = min(lo, c), max(hi, c)
	}
	if len(p.Placements) != 6 || hi-lo > 1 {
		t.Fatalf("spread placements %v (totals %v), want 6 new, evenly spread", on, total)
	}
	// The first placement goes to the empty, unloaded node.
	if p.Placements[0].NodeID != "n3" {
		t.Errorf("first spread placement on %s, want n3 (no replica, least loaded)", p.Placements[0].NodeID)
	}
}

func TestScheduleNeverOvercommitsWithinOneCall(t *testing.T) {
	// Two apps compete for one node that can take exactly three replicas.
	in := Input{
		Nodes: []Node{node("n1", res(3000, 3072, 0))},
		Requests: []Request{
			{AppID: "a", Replicas: 2, Resources: res(1000, 1024, 0)},
			{AppID: "b", Replicas: 2, Resources: res(1000, 1024, 0)},
		},
	}
	p := mustSchedule(t, in, Options{})
	if len(p.Placements) != 3 {
		t.Fatalf("placed %d, want 3", len(p.Placements))
	}
	if len(p.Unplaced) != 1 || p.Unplaced[0].AppID != "b" || p.Unplaced[0].Missing != 1 {
		t.Fatalf("unplaced = %+v, want b missing 1 (ties ordered by app id)", p.Unplaced)
	}
	if got, want := p.Unplaced[0].Reasons.String(), "0/1 nodes available: 1 insufficient cpu"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
}

func TestScheduleLargestRequestFirst(t *testing.T) {
	// Placing the small app first (by input order) would leave no node for
	// the large one; largest-first fits both.
	in := Input{
		Nodes: []Node{node("n1", res(2000, 2048, 0)), node("n2", res(1000, 1024, 0))},
		Requests: []Request{
			{AppID: "small", Replicas: 1, Resources: res(1000, 1024, 0)},
			{AppID: "large", Replicas: 1, Resources: res(2000, 2048, 0)},
		},
	}
	p := mustSchedule(t, in, Options{})
	if len(p.Unplaced) != 0 {
		t.Fatalf("unplaced %+v", p.Unplaced)
	}
	if p.Placements[0].AppID != "large" || p.Placements[0].NodeID != "n1" {
		t.Errorf("placements %+v, want large on n1 first", p.Placements)
	}
}

func TestScheduleUnplacedExplanation(t *testing.T) {
	in := Input{
		Nodes: []Node{
			node("n1", res(4000, 512, 0)),
			node("n2", res(4000, 512, 0)),
			withStatus(node("n3", res(4000, 8192, 0)), NodeDraining),
			withStatus(node("n4", res(4000, 8192, 0)), NodeDown),
		},
		Requests: []Request{{AppID: "db", Replicas: 3, Resources: res(1000, 1024, 0)}},
	}
	p := mustSchedule(t, in, Options{})
	want := "0/4 nodes available: 2 insufficient memory, 1 draining, 1 node down"
	if len(p.Placements) != 0 || len(p.Unplaced) != 1 || p.Unplaced[0].Missing != 3 || p.Unplaced[0].Reasons.String() != want {
		t.Fatalf("plan %+v\nwant unplaced 3 with %q", p, want)
	}
}

func TestSchedulePartialPlacementExplainsTheRest(t *testing.T) {
	in := Input{
		Nodes:    []Node{node("n1", res(2000, 4096, 0)), node("n2", res(1000, 4096, 0), "zone=b")},
		Requests: []Request{{AppID: "api", Replicas: 5, Resources: res(1000, 512, 0), Constraints: mustConstraints(t, "zone!=b")}},
	}
	p := mustSchedule(t, in, Options{})
	if len(p.Placements) != 2 || placedOn(p)["n1"] != 2 {
		t.Fatalf("placements %+v, want 2 on n1", p.Placements)
	}
	if len(p.Unplaced) != 1 || p.Unplaced[0].Missing != 3 {
		t.Fatalf("unplaced %+v", p.Unplaced)
	}
	if got, want := p.Unplaced[0].Reasons.String(), "0/2 nodes available: 1 constraint zone!=b not met, 1 insufficient cpu"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestScheduleConstraints(t *testing.T) {
	in := Input{
		Nodes: []Node{
			node("a-ssd", res(4000, 8192, 0), "zone=a", "disk=ssd"),
			node("a-hdd", res(4000, 8192, 0), "zone=a", "disk=hdd"),
			node("b-ssd", res(4000, 8192, 0), "zone=b", "disk=ssd"),
			node("c", res(4000, 8192, 0), "zone=c"),
		},
		Requests: []Request{
			{AppID: "x", Replicas: 4, Resources: res(100, 64, 0), Constraints: mustConstraints(t, "zone in (a,b)", "disk notin (hdd)"), Strategy: Spread},
			{AppID: "y", Replicas: 3, Resources: res(100, 64, 0), Constraints: mustConstraints(t, "disk!=ssd"), Strategy: Spread},
		},
	}
	p := mustSchedule(t, in, Options{})
	got := map[string]map[string]int{"x": {}, "y": {}}
	for _, pl := range p.Placements {
		got[pl.AppID][pl.NodeID]++
	}
	if len(got["x"]) != 2 || got["x"]["a-ssd"] != 2 || got["x"]["b-ssd"] != 2 {
		t.Errorf("x on %v, want 2 on a-ssd and 2 on b-ssd", got["x"])
	}
	if got["y"]["a-ssd"]+got["y"]["b-ssd"] != 0 || got["y"]["a-hdd"]+got["y"]["c"] != 3 {
		t.Errorf("y on %v, want only a-hdd and c (c has no disk label)", got["y"])
	}
}

func TestScheduleHostPortsAndMaxPerNode(t *testing.T) {
	in := Input{
		Nodes: []Node{node("n1", res(8000, 8192, 0)), node("n2", res(8000, 8192, 0)), node("n3", res(8000, 8192, 0))},
		Allocations: []Allocation{
			{ID: "o1", AppID: "other", NodeID: "n1", Resources: res(100, 64, 0), HostPorts: []HostPort{{Port: 80}}},
		},
		Requests: []Request{
			{AppID: "lb", Replicas: 3, Resources: res(100, 64, 0), HostPorts: []HostPort{{Port: 80, Protocol: TCP}}},
			{AppID: "cache", Replicas: 5, Resources: res(100, 64, 0), MaxPerNode: 2},
		},
	}
	p := mustSchedule(t, in, Options{})
	lb, cache := map[string]int{}, map[string]int{}
	for _, pl := range p.Placements {
		if pl.AppID == "lb" {
			lb[pl.NodeID]++
		} else {
			cache[pl.NodeID]++
		}
	}
	if lb["n1"] != 0 || lb["n2"] != 1 || lb["n3"] != 1 {
		t.Errorf("lb on %v: want one per node, none on n1 (port 80 taken)", lb)
	}
	if len(p.Unplaced) != 1 || p.Unplaced[0].AppID != "lb" || p.Unplaced[0].Missing != 1 ||
		p.Unplaced[0].Reasons.String() != "0/3 nodes available: 3 host port conflict" {
		t.Errorf("unplaced %+v", p.Unplaced)
	}
	for n, c := range cache {
		if c > 2 {
			t.Errorf("cache has %d replicas on %s, max 2", c, n)
		}
	}
	if cache["n1"]+cache["n2"]+cache["n3"] != 5 {
		t.Errorf("cache placements %v, want 5", cache)
	}
}

func TestScheduleCountsExistingReplicas(t *testing.T) {
	in := Input{
		Nodes: []Node{node("n1", res(8000, 8192, 0)), node("n2", res(8000, 8192, 0))},
		Allocations: []Allocation{
			{ID: "a1", AppID: "web", NodeID: "n1", Resources: res(100, 64, 0)},
			{ID: "a2", AppID: "web", NodeID: "n2", Resources: res(100, 64, 0)},
		},
		Requests: []Request{{AppID: "web", Replicas: 3, Resources: res(100, 64, 0)}},
	}
	p := mustSchedule(t, in, Options{})
	if len(p.Placements) != 1 || len(p.Stops) != 0 {
		t.Fatalf("plan %+v, want exactly one new placement", p)
	}
	in.Requests[0].Replicas = 2
	if p := mustSchedule(t, in, Options{}); len(p.Placements)+len(p.Stops)+len(p.Unplaced) != 0 {
		t.Fatalf("steady state plan %+v, want empty", p)
	}
}

func stopsByReason(p Plan) map[StopReason][]string {
	m := map[StopReason][]string{}
	for _, s := range p.Stops {
		m[s.Reason] = append(m[s.Reason], s.AllocationID)
	}
	return m
}

func TestScheduleStopsPreferDownAndDrainingThenMostLoaded(t *testing.T) {
	in := Input{
		Nodes: []Node{
			withStatus(node("down", res(8000, 8192, 0)), NodeDown),
			withStatus(node("drain", res(8000, 8192, 0)), NodeDraining),
			node("light", res(8000, 8192, 0)),
			node("heavy", res(8000, 8192, 0)),
		},
		Allocations: []Allocation{
			{ID: "w-down", AppID: "web", NodeID: "down", Resources: res(500, 512, 0)},
			{ID: "w-drain", AppID: "web", NodeID: "drain", Resources: res(500, 512, 0)},
			{ID: "w-light", AppID: "web", NodeID: "light", Resources: res(500, 512, 0)},
			{ID: "w-heavy1", AppID: "web", NodeID: "heavy", Resources: res(500, 512, 0)},
			{ID: "w-heavy2", AppID: "web", NodeID: "heavy", Resources: res(500, 512, 0)},
			{ID: "w-gone", AppID: "web", NodeID: "deleted-node", Resources: res(500, 512, 0)},
			{ID: "o-heavy", AppID: "other", NodeID: "heavy", Resources: res(4000, 4096, 0)},
			{ID: "o-down", AppID: "other", NodeID: "down", Resources: res(4000, 4096, 0)},
		},
		Requests: []Request{{AppID: "web", Replicas: 2, Resources: res(500, 512, 0)}},
	}
	p := mustSchedule(t, in, Options{})
	if len(p.Placements) != 0 || len(p.Unplaced) != 0 {
		t.Fatalf("plan %+v, want stops only", p)
	}
	got := stopsByReason(p)
	want := map[StopReason][]string{
		StopNodeUnknown:  {"w-gone"},
		StopNodeDown:     {"w-down"},
		StopScaleDown:    {"w-heavy1"}, // 3 ready, 2 wanted: one off the heavy node
		StopNodeDraining: {"w-drain"},
	}
	if len(p.Stops) != 4 || len(got) != len(want) {
		t.Fatalf("stops %+v, want %v", p.Stops, want)
	}
	for r, ids := range want {
		if !slices.Equal(got[r], ids) {
			t.Errorf("%s stops = %v, want %v", r, got[r], ids)
		}
	}
	// Allocations of apps without a request are left alone, even on down nodes.
	for _, s := range p.Stops {
		if s.AppID != "web" {
			t.Errorf("stopped %s of app %s, which has no request", s.AllocationID, s.AppID)
		}
	}
}

func TestScheduleScaleDownSpreadsStopsByLoad(t *testing.T) {
	// 4 replicas on heavy, 1 on light, keep 2: the greedy choice takes from
	// heavy until it is no longer the most loaded.
	in := Input{Nodes: []Node{node("heavy", res(4000, 4096, 0)), node("light", res(4000, 4096, 0))}}
	for i, n := range []string{"heavy", "heavy", "heavy", "heavy", "light"} {
		in.Allocations = append(in.Allocations, Allocation{ID: "a" + string(rune('0'+i)), AppID: "web", NodeID: n, Resources: res(500, 512, 0)})
	}
	in.Requests = []Request{{AppID: "web", Replicas: 2, Resources: res(500, 512, 0)}}
	p := mustSchedule(t, in, Options{})
	left := map[string]int{"heavy": 4, "light": 1}
	for _, s := range p.Stops {
		if s.Reason != StopScaleDown {
			t.Errorf("reason %q", s.Reason)
		}
		left[s.NodeID]--
	}
	if len(p.Stops) != 3 || left["heavy"] != 1 || left["light"] != 1 {
		t.Errorf("stops %+v leave %v, want one replica on each node", p.Stops, left)
	}
}

// On equally loaded nodes a scale-down stops the newest allocations and
// keeps the ones that have run longest, whatever their ids.
func TestScheduleScaleDownStopsNewestFirst(t *testing.T) {
	in := Input{Nodes: []Node{node("n", res(4000, 4096, 0))}}
	for _, a := range []struct {
		id  string
		idx uint64
	}{{"a-old", 10}, {"z-new", 30}, {"m-mid", 20}} {
		in.Allocations = append(in.Allocations, Allocation{ID: a.id, AppID: "web", NodeID: "n", Resources: res(500, 512, 0), CreateIndex: a.idx})
	}
	in.Requests = []Request{{AppID: "web", Replicas: 1, Resources: res(500, 512, 0)}}
	p := mustSchedule(t, in, Options{})
	var stopped []string
	for _, s := range p.Stops {
		stopped = append(stopped, s.AllocationID)
	}
	slices.Sort(stopped)
	if !slices.Equal(stopped, []string{"m-mid", "z-new"}) {
		t.Fatalf("stopped %v, want the two newest [m-mid z-new]", stopped)
	}
}

func TestScheduleReplacesDownAndDraining(t *testing.T) {
	in := Input{
		Nodes: []Node{
			withStatus(node("down", res(8000, 8192, 0)), NodeDown),
			withStatus(node("drain", res(8000, 8192, 0)), NodeDraining),
			node("ok", res(1000, 8192, 0)), // room for one replacement only
		},
		Allocations: []Allocation{
			{ID: "w1", AppID: "web", NodeID: "down", Resources: res(1000, 512, 0)},
			{ID: "w2", AppID: "web", NodeID: "drain", Resources: res(1000, 512, 0)},
			{ID: "w3", AppID: "web", NodeID: "drain", Resources: res(1000, 512, 0)},
		},
		Requests: []Request{{AppID: "web", Replicas: 3, Resources: res(1000, 512, 0)}},
	}
	p := mustSchedule(t, in, Options{})
	if len(p.Placements) != 1 || p.Placements[0].NodeID != "ok" {
		t.Fatalf("placements %+v, want one on ok", p.Placements)
	}
	// 3 missing, 1 placed: the two draining replicas cover the other two,
	// so none is stopped yet; the down one is stopped.
	got := stopsByReason(p)
	if !slices.Equal(got[StopNodeDown], []string{"w1"}) || len(got[StopNodeDraining]) != 0 {
		t.Errorf("stops %v", got)
	}
	if len(p.Unplaced) != 1 || p.Unplaced[0].Missing != 2 {
		t.Errorf("unplaced %+v, want 2 missing", p.Unplaced)
	}

	// With room for all three, both draining replicas are stopped.
	in.Nodes[2] = node("ok", res(8000, 8192, 0))
	p = mustSchedule(t, in, Options{})
	got = stopsByReason(p)
	if len(p.Placements) != 3 || len(got[StopNodeDraining]) != 2 || len(p.Unplaced) != 0 {
		t.Errorf("plan %+v", p)
	}
}

func TestScheduleInvalidRequestDoesNotBlockOthers(t *testing.T) {
	in := Input{
		Nodes: []Node{node("n1", res(4000, 4096, 0))},
		Requests: []Request{
			{AppID: "bad", Replicas: -1, Resources: res(-5, 64, 0), HostPorts: []HostPort{{Port: 80}, {Port: 80, Protocol: TCP}, {Port: 0}}, Constraints: []Constraint{{Key: "zone", Op: "~", Values: []string{"a"}}}},
			{AppID: "good", Replicas: 1, Resources: res(100, 64, 0)},
		},
	}
	p := mustSchedule(t, in, Options{})
	if len(p.Placements) != 1 || p.Placements[0].AppID != "good" {
		t.Fatalf("placements %+v", p.Placements)
	}
	if len(p.Unplaced) != 1 || p.Unplaced[0].AppID != "bad" {
		t.Fatalf("unplaced %+v", p.Unplaced)
	}
	msg := p.Unplaced[0].Reasons.String()
	for _, want := range []string{"invalid request: replicas -1 out of range [0, 1048576]; resources cpu=-5m memory=64MB storage=0MB out of range [0, MaxQuantity]", "host port 80/tcp listed twice", "port must be 1-65535", `unknown operator "~"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("explanation %q lacks %q", msg, want)
		}
	}
	if err := in.Requests[0].Validate(); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("Validate() = %v, want ErrInvalidRequest", err)
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("explanation %q has a newline", msg)
	}
}

func TestScheduleInvalidInput(t *testing.T) {
	n := node("n1", res(1000, 1024, 0))
	for _, tc := range []struct {
		name string
		in   Input
		opts Options
		want string
	}{
		{"duplicate node", Input{Nodes: []Node{n, n}}, Options{}, `duplicate node id "n1"`},
		{"empty node id", Input{Nodes: []Node{node("", res(1, 1, 1))}}, Options{}, "empty id"},
		{"negative allocatable", Input{Nodes: []Node{node("n", res(-1, 1, 1))}}, Options{}, "allocatable cpu=-1m memory=1MB storage=1MB out of range"},
		{"huge allocatable", Input{Nodes: []Node{node("n", res(1, MaxQuantity+1, 1))}}, Options{}, "out of range [0, MaxQuantity]"},
		{"huge allocation", Input{Nodes: []Node{n}, Allocations: []Allocation{{ID: "x", NodeID: "n1", Resources: res(0, 0, MaxQuantity+1)}}}, Options{}, `allocation "x": resources`},
		{"duplicate request", Input{Nodes: []Node{n}, Requests: []Request{{AppID: "a"}, {AppID: "a"}}}, Options{}, `more than one request for app "a"`},
		{"duplicate allocation", Input{Nodes: []Node{n}, Allocations: []Allocation{{ID: "x", NodeID: "n1"}, {ID: "x", NodeID: "n1"}}}, Options{}, `duplicate allocation id "x"`},
		{"negative sample", Input{}, Options{SampleSize: -1}, "sample size -1"},
	} {
		_, err := Schedule(tc.in, tc.opts)
		if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want ErrInvalidInput with %q", tc.name, err, tc.want)
		}
	}
}

func TestScheduleSampleSize(t *testing.T) {
	var nodes []Node
	for i := range 50 {
		nodes = append(nodes, node("n"+string(rune('A'+i)), res(1000, 1024, 0)))
	}
	in := Input{Nodes: nodes, Requests: []Request{{AppID: "w", Replicas: 40, Resources: res(500, 512, 0), Strategy: Spread}}}
	// Sampling 3 nodes at a time still places everything (the sample is
	// refilled when used up) and never overcommits.
	p := mustSchedule(t, in, Options{Seed: 7, SampleSize: 3})
	if len(p.Placements) != 40 || len(p.Unplaced) != 0 {
		t.Fatalf("placed %d, unplaced %+v", len(p.Placements), p.Unplaced)
	}
	for n, c := range placedOn(p) {
		if c > 2 {
			t.Errorf("%s got %d replicas of 500m on a 1000m node", n, c)
		}
	}
	// Full scoring spreads one per node; a sample of 3 cannot do better than
	// spreading within each sample, so it uses fewer distinct nodes.
	full := mustSchedule(t, in, Options{Seed: 7})
	if len(placedOn(full)) != 40 || len(placedOn(p)) >= 40 {
		t.Errorf("full spread used %d nodes, sampled %d", len(placedOn(full)), len(placedOn(p)))
	}
}

func TestScheduleSeedChangesTieBreakOnly(t *testing.T) {
	var nodes []Node
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		nodes = append(nodes, node(id, res(1000, 1024, 0)))
	}
	in := Input{Nodes: nodes, Requests: []Request{{AppID: "w", Replicas: 1, Resources: res(100, 64, 0)}}}
	seen := map[string]bool{}
	for seed := range int64(40) {
		p := mustSchedule(t, in, Options{Seed: seed})
		seen[p.Placements[0].NodeID] = true
		if q := mustSchedule(t, in, Options{Seed: seed}); q.Placements[0].NodeID != p.Placements[0].NodeID {
			t.Fatalf("seed %d not deterministic", seed)
		}
	}
	if len(seen) < 4 {
		t.Errorf("40 seeds chose only %d distinct nodes among 8 equal ones: ties not hashed by seed", len(seen))
	}
}

func TestScheduleSpreadReusedHeapSeesNewAppsReplicas(t *testing.T) {
	// "a" and "b" have the same shape, so b reuses a's heap. b already runs
	// on node z (an allocation using nothing, so z looks as idle as any
	// node): spread must still avoid z, whichever node z is in tie order.
	for _, z := range []string{"n1", "n2", "n3"} {
		for seed := range int64(5) {
			in := Input{
				Nodes:       []Node{node("n1", res(4000, 4096, 0)), node("n2", res(4000, 4096, 0)), node("n3", res(4000, 4096, 0))},
				Allocations: []Allocation{{ID: "b0", AppID: "b", NodeID: z}},
				Requests: []Request{
					{AppID: "a", Replicas: 1, Resources: res(100, 64, 0), Strategy: Spread},
					{AppID: "b", Replicas: 2, Resources: res(100, 64, 0), Strategy: Spread},
				},
			}
			p := mustSchedule(t, in, Options{Seed: seed})
			if len(p.Placements) != 2 || p.Placements[1].AppID != "b" {
				t.Fatalf("placements %+v", p.Placements)
			}
			if p.Placements[1].NodeID == z || p.Placements[1].NodeID == p.Placements[0].NodeID {
				t.Errorf("z=%s seed=%d: b placed on %s (a on %s), want the third node", z, seed, p.Placements[1].NodeID, p.Placements[0].NodeID)
			}
		}
	}
}

func TestScheduleMaxPerNodeReusedHeapReadmitsNodes(t *testing.T) {
	// a fills both nodes up to its max per node; b, of the same shape, reuses
	// a's heap and must get the nodes back: the limit counts b's replicas.
	in := Input{
		Nodes: []Node{node("n1", res(4000, 4096, 0)), node("n2", res(4000, 4096, 0))},
		Requests: []Request{
			{AppID: "a", Replicas: 2, Resources: res(100, 64, 0), MaxPerNode: 1},
			{AppID: "b", Replicas: 2, Resources: res(100, 64, 0), MaxPerNode: 1},
		},
	}
	p := mustSchedule(t, in, Options{})
	if len(p.Placements) != 4 || len(p.Unplaced) != 0 {
		t.Fatalf("plan %+v, want 4 placements", p)
	}
	for app, on := range map[string]map[string]int{"a": {}, "b": {}} {
		for _, pl := range p.Placements {
			if pl.AppID == app {
				on[pl.NodeID]++
			}
		}
		if on["n1"] != 1 || on["n2"] != 1 {
			t.Errorf("%s on %v, want one per node", app, on)
		}
	}
}
