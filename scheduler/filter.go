package scheduler

import "fmt"

// NodeInfo is one node as filters and scorers see it at one point of a
// Schedule call: its static description plus what is still free after the
// existing allocations and the placements made so far.
type NodeInfo struct {
	Node *Node
	// Free is Allocatable minus existing allocations minus placements so far.
	// It may be negative when the input is already overcommitted.
	Free Resources
	// AppReplicas is the number of replicas of the request's app on the node
	// (existing allocations plus placements so far).
	AppReplicas int

	usedPorts map[uint32]struct{}
}

// NewNodeInfo builds a NodeInfo (tests, and callers explaining a decision).
func NewNodeInfo(node *Node, free Resources, appReplicas int, usedPorts []HostPort) NodeInfo {
	ni := NodeInfo{Node: node, Free: free, AppReplicas: appReplicas}
	if len(usedPorts) > 0 {
		ni.usedPorts = make(map[uint32]struct{}, len(usedPorts))
		for _, p := range usedPorts {
			ni.usedPorts[p.key()] = struct{}{}
		}
	}
	return ni
}

// PortInUse reports whether p is already bound on the node.
func (n *NodeInfo) PortInUse(p HostPort) bool {
	_, ok := n.usedPorts[p.key()]
	return ok
}

// Filter decides whether a node can take one more replica of a request
// (swarmkit's Filter, the Kubernetes Filter plugin). Filters are built for
// one request by FiltersFor; each is small and has a table-driven test.
//
// Schedule runs a fused, allocation-free version of the same checks in its
// hot loop (cluster.feasible) and uses these types to explain failures;
// TestFastPathMatchesFilters keeps the two in agreement. A new filter must be
// added to both.
type Filter interface {
	// Name is a stable identifier ("ready", "fits-memory", ...).
	Name() string
	// Check reports whether the node passes.
	Check(n *NodeInfo) bool
	// Explain is the reason a failing node is counted under, e.g.
	// "insufficient memory". Explanations group nodes by this text.
	Explain() string
}

// FiltersFor returns the filters that apply to req, in the order they run
// (cheap and static first). A node is feasible when it passes all of them;
// an explanation counts each node under the first filter it fails.
func FiltersFor(req *Request) []Filter {
	fs := make([]Filter, 0, 6+len(req.Constraints))
	fs = append(fs, ReadyFilter{}, DrainFilter{})
	for _, c := range req.Constraints {
		fs = append(fs, ConstraintFilter{Constraint: c})
	}
	fs = append(fs,
		FitsFilter{Dim: CPU, Need: req.Resources.CPU},
		FitsFilter{Dim: Memory, Need: req.Resources.MemoryMB},
		FitsFilter{Dim: Storage, Need: req.Resources.StorageMB},
	)
	if len(req.HostPorts) > 0 {
		fs = append(fs, HostPortFilter{Ports: req.HostPorts})
	}
	if req.MaxPerNode > 0 {
		fs = append(fs, MaxPerNodeFilter{Max: req.MaxPerNode})
	}
	return fs
}

// ReadyFilter rejects nodes that are down (or in an unknown state).
// Draining nodes pass here and are rejected by DrainFilter, so the
// explanation says which of the two it was.
type ReadyFilter struct{}

func (ReadyFilter) Name() string    { return "ready" }
func (ReadyFilter) Explain() string { return "node down" }
func (ReadyFilter) Check(n *NodeInfo) bool {
	return n.Node.Status == NodeReady || n.Node.Status == NodeDraining
}

// DrainFilter rejects draining nodes.
type DrainFilter struct{}

func (DrainFilter) Name() string           { return "not-draining" }
func (DrainFilter) Explain() string        { return "draining" }
func (DrainFilter) Check(n *NodeInfo) bool { return n.Node.Status != NodeDraining }

// ConstraintFilter rejects nodes whose labels do not satisfy one constraint.
// A request gets one ConstraintFilter per constraint, so explanations name
// the constraint that failed.
type ConstraintFilter struct {
	Constraint Constraint
}

func (f ConstraintFilter) Name() string           { return "constraint" }
func (f ConstraintFilter) Explain() string        { return "constraint " + f.Constraint.String() + " not met" }
func (f ConstraintFilter) Check(n *NodeInfo) bool { return f.Constraint.Matches(n.Node.Labels) }

// FitsFilter rejects nodes without Need free in dimension Dim.
type FitsFilter struct {
	Dim  Dimension
	Need int64
}

func (f FitsFilter) Name() string           { return "fits-" + f.Dim.String() }
func (f FitsFilter) Explain() string        { return "insufficient " + f.Dim.String() }
func (f FitsFilter) Check(n *NodeInfo) bool { return f.Need <= n.Free.Get(f.Dim) }

// HostPortFilter rejects nodes where one of Ports is already bound.
type HostPortFilter struct {
	Ports []HostPort
}

func (HostPortFilter) Name() string    { return "host-ports" }
func (HostPortFilter) Explain() string { return "host port conflict" }
func (f HostPortFilter) Check(n *NodeInfo) bool {
	for _, p := range f.Ports {
		if n.PortInUse(p) {
			return false
		}
	}
	return true
}

// MaxPerNodeFilter rejects nodes that already run Max replicas of the app.
type MaxPerNodeFilter struct {
	Max int
}

func (MaxPerNodeFilter) Name() string { return "max-per-node" }
func (f MaxPerNodeFilter) Explain() string {
	return fmt.Sprintf("max %d per node reached", f.Max)
}
func (f MaxPerNodeFilter) Check(n *NodeInfo) bool { return n.AppReplicas < f.Max }
