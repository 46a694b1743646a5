package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// ri builds a rollout instance: state is "H" (new and healthy), "R"
// (running), or "-" (not running).
func ri(id string, version int64, state string) RolloutInstance {
	return RolloutInstance{ID: id, Version: version, Running: state != "-", Healthy: state == "H"}
}

func TestPlanRollout(t *testing.T) {
	for _, tc := range []struct {
		name       string
		r          Rollout
		wantStop   []string
		wantTarget int
	}{{
		name:       "start: one new instance, no old one stops yet",
		r:          Rollout{Desired: 2, Version: 2, Instances: []RolloutInstance{ri("a", 1, "R"), ri("b", 1, "R")}},
		wantTarget: 1,
	}, {
		name:       "new instance starting (or running, not yet healthy): wait",
		r:          Rollout{Desired: 2, Version: 2, Instances: []RolloutInstance{ri("a", 1, "R"), ri("b", 1, "R"), ri("n1", 2, "R")}},
		wantTarget: 1,
	}, {
		name:       "new instance healthy: one old stops and the next new one starts",
		r:          Rollout{Desired: 2, Version: 2, Instances: []RolloutInstance{ri("a", 1, "R"), ri("b", 1, "R"), ri("n1", 2, "H")}},
		wantStop:   []string{"a"},
		wantTarget: 2,
	}, {
		name:       "last new instance healthy: the last old stops",
		r:          Rollout{Desired: 2, Version: 2, Instances: []RolloutInstance{ri("b", 1, "R"), ri("n1", 2, "H"), ri("n2", 2, "H")}},
		wantStop:   []string{"b"},
		wantTarget: 2,
	}, {
		name:       "new instance fails (ERROR, crash loop): halt, old ones keep running",
		r:          Rollout{Desired: 2, Version: 2, Instances: []RolloutInstance{ri("a", 1, "R"), ri("b", 1, "R"), ri("n1", 2, "-")}},
		wantTarget: 1,
	}, {
		name: "a newer update supersedes a halted rollout: the failed instance stops at once",
		r: Rollout{Desired: 2, Version: 3, Instances: []RolloutInstance{
			ri("a", 1, "R"), ri("b", 1, "R"), ri("n1", 2, "-")}},
		wantStop:   []string{"n1"},
		wantTarget: 1,
	}, {
		name: "superseding a rollout in progress: oldest version stops first",
		r: Rollout{Desired: 2, Version: 3, Instances: []RolloutInstance{
			ri("z", 2, "R"), ri("b", 1, "R"), ri("m", 3, "H")}},
		wantStop:   []string{"b"},
		wantTarget: 2,
	}, {
		name:       "old instances that do not run serve nothing: stopped, and replaced at once",
		r:          Rollout{Desired: 2, Version: 2, Instances: []RolloutInstance{ri("a", 1, "-"), ri("b", 1, "-")}},
		wantStop:   []string{"a", "b"},
		wantTarget: 2,
	}, {
		name:       "scaled down during a rollout",
		r:          Rollout{Desired: 1, Version: 2, Instances: []RolloutInstance{ri("a", 1, "R"), ri("b", 1, "R"), ri("n1", 2, "H")}},
		wantStop:   []string{"a", "b"},
		wantTarget: 1,
	}, {
		name:       "stop-first: an old instance stops before anything is placed",
		r:          Rollout{Desired: 2, Version: 2, StopFirst: true, Instances: []RolloutInstance{ri("a", 1, "R"), ri("b", 1, "R")}},
		wantStop:   []string{"a"},
		wantTarget: 0,
	}, {
		name:       "stop-first: once stopped, the replacement is placed",
		r:          Rollout{Desired: 2, Version: 2, StopFirst: true, Instances: []RolloutInstance{ri("b", 1, "R")}},
		wantTarget: 1,
	}, {
		name:       "stop-first: the next old instance waits for the replacement to be healthy",
		r:          Rollout{Desired: 2, Version: 2, StopFirst: true, Instances: []RolloutInstance{ri("b", 1, "R"), ri("n1", 2, "R")}},
		wantTarget: 1,
	}, {
		name:       "stop-first: replacement healthy, the next old one stops",
		r:          Rollout{Desired: 2, Version: 2, StopFirst: true, Instances: []RolloutInstance{ri("b", 1, "R"), ri("n1", 2, "H")}},
		wantStop:   []string{"b"},
		wantTarget: 1,
	}, {
		name:       "stop-first: a failed replacement halts, the rest keeps running",
		r:          Rollout{Desired: 3, Version: 2, StopFirst: true, Instances: []RolloutInstance{ri("b", 1, "R"), ri("c", 1, "R"), ri("n1", 2, "-")}},
		wantTarget: 1,
	}, {
		name:       "no room for the extra instance: make room stop-first, one at a time",
		r:          Rollout{Desired: 2, Version: 2, NoRoom: true, Instances: []RolloutInstance{ri("a", 1, "R"), ri("b", 1, "R")}},
		wantStop:   []string{"a"},
		wantTarget: 0,
	}, {
		name:       "no room again after making room: wait, never a second old instance",
		r:          Rollout{Desired: 2, Version: 2, NoRoom: true, Instances: []RolloutInstance{ri("b", 1, "R")}},
		wantTarget: 1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := PlanRollout(tc.r)
			if !slices.Equal(got.Stop, tc.wantStop) || got.Target != tc.wantTarget {
				t.Fatalf("PlanRollout = stop %v target %d, want stop %v target %d", got.Stop, got.Target, tc.wantStop, tc.wantTarget)
			}
		})
	}
}

// Simulated rollouts: whatever the order in which new instances become
// healthy or fail, a start-first rollout never has fewer than Desired
// instances serving (old running + new healthy) nor more than Desired+1
// instances, and it completes when every new instance becomes healthy;
// stop-first never runs more than Desired and keeps Desired-1 serving.
func TestPlanRolloutSimulated(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		desired := rapid.IntRange(1, 6).Draw(t, "desired")
		stopFirst := rapid.Bool().Draw(t, "stopFirst")
		insts := map[string]RolloutInstance{}
		for i := range desired {
			id := fmt.Sprintf("old%d", i)
			insts[id] = ri(id, 1, "R")
		}
		next := 0
		for step := 0; step < 10*desired+10; step++ {
			list := make([]RolloutInstance, 0, len(insts))
			for _, in := range insts {
				list = append(list, in)
			}
			slices.SortFunc(list, func(a, b RolloutInstance) int { return strings.Compare(a.ID, b.ID) })
			s := PlanRollout(Rollout{Desired: desired, Version: 2, StopFirst: stopFirst, Instances: list})
			for _, id := range s.Stop {
				if insts[id].Version == 2 {
					t.Fatalf("step %d: stops new instance %s", step, id)
				}
				delete(insts, id)
			}
			newN := 0
			for _, in := range insts {
				if in.Version == 2 {
					newN++
				}
			}
			for ; newN < s.Target; newN++ { // the scheduler places the missing ones
				id := fmt.Sprintf("new%d", next)
				next++
				insts[id] = ri(id, 2, "-")
			}
			serving, total := 0, len(insts)
			for _, in := range insts {
				if in.Version == 1 && in.Running || in.Healthy {
					serving++
				}
			}
			if stopFirst {
				if total > desired || serving < desired-1 {
					t.Fatalf("step %d: stop-first has %d instances (max %d), %d serving (min %d)", step, total, desired, serving, desired-1)
				}
			} else if total > desired+1 || serving < desired {
				t.Fatalf("step %d: start-first has %d instances (max %d), %d serving (min %d)", step, total, desired+1, serving, desired)
			}
			// Some new instance progresses: starting -> running -> healthy.
			var pending []string
			for id, in := range insts {
				if in.Version == 2 && !in.Healthy {
					pending = append(pending, id)
				}
			}
			if len(pending) == 0 {
				if len(s.Stop) == 0 && newN == desired && total == desired {
					return // done: every instance is new and healthy
				}
				continue
			}
			slices.Sort(pending)
			id := pending[rapid.IntRange(0, len(pending)-1).Draw(t, "progress")]
			in := insts[id]
			if in.Running {
				in.Healthy = true
			} else {
				in.Running = true
			}
			insts[id] = in
		}
		t.Fatalf("rollout did not complete: %v", insts)
	})
}
