package scheduler

import (
	"slices"
	"testing"
)

func TestFilters(t *testing.T) {
	ready := node("n1", res(4000, 8192, 100000), "zone=a", "disk=ssd")
	draining := withStatus(ready, NodeDraining)
	down := withStatus(ready, NodeDown)
	unknownStatus := withStatus(ready, NodeStatus(9))
	free := res(1000, 2048, 5000)
	info := func(n Node, free Resources, appReplicas int, ports ...HostPort) NodeInfo {
		return NewNodeInfo(&n, free, appReplicas, ports)
	}
	cons := func(s string) Constraint { return mustConstraints(t, s)[0] }

	for _, tc := range []struct {
		name        string
		f           Filter
		n           NodeInfo
		want        bool
		wantName    string
		wantExplain string
	}{
		{"ready passes ready", ReadyFilter{}, info(ready, free, 0), true, "ready", "node down"},
		{"ready passes draining (DrainFilter explains it)", ReadyFilter{}, info(draining, free, 0), true, "ready", "node down"},
		{"ready rejects down", ReadyFilter{}, info(down, free, 0), false, "ready", "node down"},
		{"ready rejects unknown status", ReadyFilter{}, info(unknownStatus, free, 0), false, "ready", "node down"},
		{"drain passes ready", DrainFilter{}, info(ready, free, 0), true, "not-draining", "draining"},
		{"drain rejects draining", DrainFilter{}, info(draining, free, 0), false, "not-draining", "draining"},
		{"constraint =", ConstraintFilter{cons("zone=a")}, info(ready, free, 0), true, "constraint", "constraint zone=a not met"},
		{"constraint = fails", ConstraintFilter{cons("zone=b")}, info(ready, free, 0), false, "constraint", "constraint zone=b not met"},
		{"constraint in", ConstraintFilter{cons("zone in (b,a)")}, info(ready, free, 0), true, "constraint", "constraint zone in (b,a) not met"},
		{"constraint notin fails", ConstraintFilter{cons("disk notin (ssd)")}, info(ready, free, 0), false, "constraint", "constraint disk notin (ssd) not met"},
		{"constraint != on missing label", ConstraintFilter{cons("gpu!=none")}, info(ready, free, 0), true, "constraint", "constraint gpu!=none not met"},
		{"cpu fits exactly", FitsFilter{CPU, 1000}, info(ready, free, 0), true, "fits-cpu", "insufficient cpu"},
		{"cpu short by 1", FitsFilter{CPU, 1001}, info(ready, free, 0), false, "fits-cpu", "insufficient cpu"},
		{"memory fits", FitsFilter{Memory, 2048}, info(ready, free, 0), true, "fits-memory", "insufficient memory"},
		{"memory short", FitsFilter{Memory, 2049}, info(ready, free, 0), false, "fits-memory", "insufficient memory"},
		{"storage fits", FitsFilter{Storage, 5000}, info(ready, free, 0), true, "fits-storage", "insufficient storage"},
		{"storage short", FitsFilter{Storage, 5001}, info(ready, free, 0), false, "fits-storage", "insufficient storage"},
		{"zero need on overcommitted node", FitsFilter{CPU, 0}, info(ready, res(-1, 0, 0), 0), false, "fits-cpu", "insufficient cpu"},
		{"ports free", HostPortFilter{[]HostPort{{Port: 80}}}, info(ready, free, 0, HostPort{Port: 443}), true, "host-ports", "host port conflict"},
		{"port taken (tcp == empty protocol)", HostPortFilter{[]HostPort{{Port: 80, Protocol: TCP}}}, info(ready, free, 0, HostPort{Port: 80}), false, "host-ports", "host port conflict"},
		{"same number other protocol", HostPortFilter{[]HostPort{{Port: 53, Protocol: UDP}}}, info(ready, free, 0, HostPort{Port: 53}), true, "host-ports", "host port conflict"},
		{"second port taken", HostPortFilter{[]HostPort{{Port: 80}, {Port: 53, Protocol: UDP}}}, info(ready, free, 0, HostPort{Port: 53, Protocol: UDP}), false, "host-ports", "host port conflict"},
		{"max per node below", MaxPerNodeFilter{2}, info(ready, free, 1), true, "max-per-node", "max 2 per node reached"},
		{"max per node reached", MaxPerNodeFilter{2}, info(ready, free, 2), false, "max-per-node", "max 2 per node reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.Check(&tc.n); got != tc.want {
				t.Errorf("Check = %v, want %v", got, tc.want)
			}
			if got := tc.f.Name(); got != tc.wantName {
				t.Errorf("Name = %q, want %q", got, tc.wantName)
			}
			if got := tc.f.Explain(); got != tc.wantExplain {
				t.Errorf("Explain = %q, want %q", got, tc.wantExplain)
			}
		})
	}
}

func TestFiltersForOrderAndOptionalFilters(t *testing.T) {
	names := func(fs []Filter) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Name())
		}
		return out
	}
	plain := Request{AppID: "a", Replicas: 1, Resources: res(100, 64, 0)}
	if got, want := names(FiltersFor(&plain)), []string{"ready", "not-draining", "fits-cpu", "fits-memory", "fits-storage"}; !slices.Equal(got, want) {
		t.Errorf("plain = %v, want %v", got, want)
	}
	full := plain
	full.Constraints = mustConstraints(t, "zone=a", "disk notin (hdd)")
	full.HostPorts = []HostPort{{Port: 80}}
	full.MaxPerNode = 1
	want := []string{"ready", "not-draining", "constraint", "constraint", "fits-cpu", "fits-memory", "fits-storage", "host-ports", "max-per-node"}
	if got := names(FiltersFor(&full)); !slices.Equal(got, want) {
		t.Errorf("full = %v, want %v", got, want)
	}
}

func TestExplain(t *testing.T) {
	small := node("small", res(1000, 512, 1000))
	big := node("big", res(8000, 16384, 1000), "zone=a")
	req := Request{AppID: "a", Replicas: 1, Resources: res(500, 1024, 0)}
	for _, tc := range []struct {
		name  string
		nodes []NodeInfo
		req   Request
		want  string
	}{
		{
			name: "brief example",
			nodes: []NodeInfo{
				NewNodeInfo(&small, res(1000, 512, 1000), 0, nil),
				NewNodeInfo(&small, res(1000, 512, 1000), 0, nil),
				NewNodeInfo(ptr(withStatus(big, NodeDraining)), res(8000, 16384, 1000), 0, nil),
			},
			req:  req,
			want: "0/3 nodes available: 2 insufficient memory, 1 draining",
		},
		{
			name: "first failing filter only; ties by reason",
			nodes: []NodeInfo{
				NewNodeInfo(ptr(withStatus(small, NodeDown)), res(0, 0, 0), 0, nil), // down, also no memory
				NewNodeInfo(&small, res(0, 0, 1000), 0, nil),                        // cpu before memory
				NewNodeInfo(&big, res(8000, 16384, 1000), 0, nil),                   // fits
			},
			req:  req,
			want: "1/3 nodes available: 1 insufficient cpu, 1 node down",
		},
		{
			name: "constraint named",
			nodes: []NodeInfo{
				NewNodeInfo(&small, res(1000, 4096, 1000), 0, nil),
				NewNodeInfo(&small, res(1000, 4096, 1000), 0, nil),
				NewNodeInfo(&big, res(8000, 16384, 1000), 2, nil),
			},
			req:  Request{AppID: "a", Replicas: 1, Resources: res(500, 1024, 0), Constraints: mustConstraints(t, "zone in (a,b)"), MaxPerNode: 2},
			want: "0/3 nodes available: 2 constraint zone in (a,b) not met, 1 max 2 per node reached",
		},
		{name: "no nodes", req: req, want: "0/0 nodes available"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Explain(tc.nodes, FiltersFor(&tc.req))
			if got := e.String(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			sum := e.Available
			for _, f := range e.Failures {
				sum += f.Nodes
			}
			if sum != len(tc.nodes) || e.Nodes != len(tc.nodes) {
				t.Errorf("counts %+v do not add up to %d nodes", e, len(tc.nodes))
			}
		})
	}
	if got := (Explanation{Invalid: "invalid request: replicas -1 < 0"}).String(); got != "invalid request: replicas -1 < 0" {
		t.Errorf("invalid explanation = %q", got)
	}
}

func ptr[T any](v T) *T { return &v }
