package scheduler

import (
	"fmt"
	"strings"
)

// NodeStatus is the scheduling status of a node. The zero value is NodeDown,
// so a node whose status was never set receives nothing.
type NodeStatus uint8

const (
	// NodeDown: the node missed its heartbeats (or never reported). Its
	// allocations are lost: they are replaced elsewhere and stopped.
	NodeDown NodeStatus = iota
	// NodeReady: the node accepts new placements.
	NodeReady
	// NodeDraining: the node accepts nothing new; its allocations are
	// replaced elsewhere and stopped once a replacement is placed.
	NodeDraining
)

func (s NodeStatus) String() string {
	switch s {
	case NodeDown:
		return "down"
	case NodeReady:
		return "ready"
	case NodeDraining:
		return "draining"
	}
	return fmt.Sprintf("NodeStatus(%d)", uint8(s))
}

// Node is a worker host as the scheduler sees it.
type Node struct {
	ID     string
	Status NodeStatus
	// Capacity is what the host has; Allocatable is Capacity minus the share
	// reserved for the host. Placement only ever checks Allocatable.
	Capacity    Resources
	Allocatable Resources
	Labels      map[string]string
}

// Protocol of a host port.
type Protocol string

// The protocols a host port may use. The empty protocol means TCP.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// HostPort is a port bound on the host; two allocations on the same node may
// not bind the same port and protocol.
type HostPort struct {
	Port     uint16
	Protocol Protocol // "" means TCP
}

func (p HostPort) String() string {
	proto := p.Protocol
	if proto == "" {
		proto = TCP
	}
	return fmt.Sprintf("%d/%s", p.Port, proto)
}

// key packs the port into one comparable integer ("" and "tcp" are equal).
func (p HostPort) key() uint32 {
	if p.Protocol == UDP {
		return 1<<16 | uint32(p.Port)
	}
	return uint32(p.Port)
}

func (p HostPort) validate() error {
	if p.Port == 0 {
		return fmt.Errorf("host port %s: port must be 1-65535", p)
	}
	if p.Protocol != "" && p.Protocol != TCP && p.Protocol != UDP {
		return fmt.Errorf("host port %d: unknown protocol %q (want tcp or udp)", p.Port, string(p.Protocol))
	}
	return nil
}

// Allocation is an existing instance of an app on a node. Allocations on
// READY and DRAINING nodes use resources and host ports there.
type Allocation struct {
	ID        string
	AppID     string
	NodeID    string
	Resources Resources
	HostPorts []HostPort
}

// Strategy chooses among the feasible nodes.
type Strategy uint8

const (
	// BinPack (the default) prefers the node that will be the most allocated
	// after the placement, keeping whole nodes free for large requests.
	BinPack Strategy = iota
	// Spread prefers the node with the fewest replicas of the same app, then
	// the least allocated one.
	Spread
)

func (s Strategy) String() string {
	switch s {
	case BinPack:
		return "binpack"
	case Spread:
		return "spread"
	}
	return fmt.Sprintf("Strategy(%d)", uint8(s))
}

// MaxReplicas bounds Request.Replicas.
const MaxReplicas = 1 << 20

// Request is the desired state of one app: Replicas instances in total, each
// using Resources. Schedule counts the app's allocations on READY nodes and
// places only the missing replicas; extra ones are stopped.
type Request struct {
	AppID       string
	Replicas    int       // total desired
	Resources   Resources // per replica
	Constraints []Constraint
	HostPorts   []HostPort
	MaxPerNode  int // 0 = unlimited
	Strategy    Strategy
}

// Validate returns every problem of the request at once, in one error
// wrapping ErrInvalidRequest.
func (r *Request) Validate() error {
	var problems []string
	add := func(format string, a ...any) {
		problems = append(problems, fmt.Sprintf(format, a...))
	}
	if r.AppID == "" {
		add("empty app id")
	}
	if r.Replicas < 0 || r.Replicas > MaxReplicas {
		add("replicas %d out of range [0, %d]", r.Replicas, MaxReplicas)
	}
	if !r.Resources.valid() {
		add("resources %s out of range [0, MaxQuantity]", r.Resources)
	}
	if r.MaxPerNode < 0 {
		add("max per node %d < 0", r.MaxPerNode)
	}
	if r.Strategy != BinPack && r.Strategy != Spread {
		add("unknown strategy %s", r.Strategy)
	}
	for _, c := range r.Constraints {
		if err := c.Validate(); err != nil {
			add("%v", err)
		}
	}
	for k, p := range r.HostPorts {
		if err := p.validate(); err != nil {
			add("%v", err)
			continue
		}
		for _, q := range r.HostPorts[:k] {
			if q.key() == p.key() {
				add("host port %s listed twice", p)
				break
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidRequest, strings.Join(problems, "; "))
}

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
