// Package scheduler decides where app replicas run. It is PURE placement:
// Schedule takes a view of the cluster (nodes, existing allocations) and the
// desired state of some apps (requests), and returns a Plan: placements for
// missing replicas, stops for surplus or stranded ones, and, for every replica
// it could not place, an explanation counted per filter, for example
//
//	0/3 nodes available: 2 insufficient memory, 1 draining
//
// What the package owns:
//   - the resource model of placement (Resources: millicores, MB, MB),
//   - node feasibility (filters: ready, not draining, label constraints,
//     cpu, memory, storage, host ports, max replicas per node) and the text
//     that explains a failure,
//   - node preference (scorers: bin-pack by default, spread per app),
//   - the reconciliation of an app's replica count against its allocations
//     (which replicas to add, which to stop, and why).
//
// What it must not do:
//   - no I/O, no logging, no metrics, no clock, no goroutines;
//   - no randomness except the seed it is given (Options.Seed): the same Input
//     and Options always give the same Plan, whatever the order of the input
//     slices;
//   - no quota or admission arithmetic (that lives with the control plane);
//   - never overcommit: placements in one Plan see each other's usage, and no
//     dimension of any node goes beyond its allocatable resources.
//
// The control plane leader calls Schedule on a state snapshot and commits the
// Plan through raft; the FSM re-checks capacity, so a stale plan is rejected
// whole rather than half applied. Stops are conservative: the resources of an
// allocation stopped by a Plan are not reused by placements of the same Plan,
// they become free in the next run, once the stop is committed.
package scheduler
