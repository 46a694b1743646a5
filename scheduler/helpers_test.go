package scheduler

import (
	"fmt"
	"testing"
)

// res builds Resources tersely: cpu millicores, memory MB, storage MB.
func res(cpu, mem, sto int64) Resources {
	return Resources{CPU: cpu, MemoryMB: mem, StorageMB: sto}
}

// node builds a READY node whose capacity equals its allocatable.
func node(id string, r Resources, labels ...string) Node {
	n := Node{ID: id, Status: NodeReady, Capacity: r, Allocatable: r}
	if len(labels) > 0 {
		n.Labels = make(map[string]string)
		for _, kv := range labels {
			c, err := ParseConstraint(kv)
			if err != nil || c.Op != OpEqual {
				panic(fmt.Sprintf("bad label %q", kv))
			}
			n.Labels[c.Key] = c.Values[0]
		}
	}
	return n
}

func withStatus(n Node, s NodeStatus) Node { n.Status = s; return n }

func mustSchedule(t testing.TB, in Input, opts Options) Plan {
	t.Helper()
	p, err := Schedule(in, opts)
	if err != nil {
		t.Fatalf("Schedule: %v", err)
	}
	return p
}

// placedOn counts placements per node id.
func placedOn(p Plan) map[string]int {
	m := make(map[string]int)
	for _, pl := range p.Placements {
		m[pl.NodeID]++
	}
	return m
}

func mustConstraints(t testing.TB, ss ...string) []Constraint {
	t.Helper()
	cs, err := ParseConstraints(ss)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
