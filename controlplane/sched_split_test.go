package controlplane

import (
	"fmt"
	"testing"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// splitPlan: every placement kept in order, chunks of at most max, stops and
// messages only in the first chunk, and each chunk carries the versions and
// node indexes its placements were computed against.
func TestSchedSplitPlan(t *testing.T) {
	p := &atollv1.ApplyPlanCmd{Stop: []string{"inst_old1", "inst_old2"}, Unplaced: map[string]string{"app_z": "0/2 nodes available: 2 insufficient cpu"},
		AppVersions: map[string]int64{"app_z": 3}, NodeIndexes: map[string]uint64{}}
	for i := 0; i < 10; i++ {
		app, node := fmt.Sprintf("app_%d", i%3), fmt.Sprintf("node_%d", i%4)
		p.Place = append(p.Place, &atollv1.Instance{Id: fmt.Sprintf("inst_%02d", i), AppId: app, NodeId: node})
		p.AppVersions[app], p.NodeIndexes[node] = int64(i%3+1), uint64(100+i%4)
	}
	chunks := splitPlan(p, 4)
	if len(chunks) != 3 {
		t.Fatalf("%d chunks, want 3", len(chunks))
	}
	var ids []string
	for k, c := range chunks {
		if len(c.Place) > 4 {
			t.Fatalf("chunk %d has %d placements", k, len(c.Place))
		}
		if k > 0 && (len(c.Stop) > 0 || len(c.Unplaced) > 0) {
			t.Fatalf("chunk %d carries stops or messages", k)
		}
		for _, in := range c.Place {
			ids = append(ids, in.Id)
			if c.AppVersions[in.AppId] != p.AppVersions[in.AppId] || c.NodeIndexes[in.NodeId] != p.NodeIndexes[in.NodeId] {
				t.Fatalf("chunk %d places %s without its app version or node index", k, in.Id)
			}
		}
	}
	if len(chunks[0].Stop) != 2 || chunks[0].Unplaced["app_z"] == "" || chunks[0].AppVersions["app_z"] != 3 {
		t.Fatalf("first chunk: %v", chunks[0])
	}
	for i, id := range ids {
		if id != p.Place[i].Id {
			t.Fatalf("placement %d is %s, want %s", i, id, p.Place[i].Id)
		}
	}
	if one := splitPlan(p, 10); len(one) != 1 || one[0] != p {
		t.Fatal("a plan within the limit is not split")
	}
}

func TestSchedMainReason(t *testing.T) {
	for why, want := range map[string]string{
		"0/3 nodes available: 2 insufficient memory, 1 draining":                               "insufficient memory",
		"cannot move off a draining node: 0/2 nodes available: 1 draining, 1 insufficient cpu": "draining",
		"invalid": "other",
	} {
		if got := mainReason(why); got != want {
			t.Errorf("mainReason(%q) = %q, want %q", why, got, want)
		}
	}
}
