package scheduler

// Input is the cluster view and the desired state to reconcile. Only the apps
// named in Requests are reconciled; allocations of other apps only count as
// used resources and ports.
type Input struct {
	Nodes       []Node
	Allocations []Allocation
	Requests    []Request
}

// Options tune one Schedule call.
type Options struct {
	// Seed breaks ties between equally scored nodes (through a hash of the
	// node id) and picks the sample when SampleSize > 0.
	Seed int64
	// SampleSize 0 scores every feasible node. N > 0 scores a deterministic,
	// seeded sample of N feasible nodes per request (for very large clusters);
	// when the sample is used up, the next N are taken. A request fails only
	// when no node at all is feasible.
	SampleSize int

	// onDecision, when set (tests and benchmarks only), is called after each
	// replica decision, placed or not.
	onDecision func()
	// noReuse turns off heap reuse between requests of the same shape
	// (tests: the plan must not change).
	noReuse bool
}

// Plan is the output of Schedule.
type Plan struct {
	Placements []Placement
	Stops      []Stop
	Unplaced   []Unplaced
}

// Placement starts one new replica of AppID on NodeID.
type Placement struct {
	AppID     string
	NodeID    string
	Resources Resources
	HostPorts []HostPort
}

// StopReason says why an allocation is stopped.
type StopReason string

// The stop reasons.
const (
	StopScaleDown    StopReason = "scale down"    // more replicas than desired
	StopNodeDown     StopReason = "node down"     // replaced elsewhere
	StopNodeDraining StopReason = "node draining" // a replacement was placed
	StopNodeUnknown  StopReason = "node unknown"  // the node is not in the input
)

// Stop ends one existing allocation.
type Stop struct {
	AllocationID string
	AppID        string
	NodeID       string
	Reason       StopReason
}

// Unplaced reports replicas of an app that could not be placed, and why.
type Unplaced struct {
	AppID   string
	Missing int
	Reasons Explanation
}
