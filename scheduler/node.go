package scheduler

import "fmt"

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
	// CreateIndex orders allocations by age (the raft index that created
	// it; 0: unknown): of equally loaded nodes' allocations, a scale-down
	// stops the newest first and keeps the ones that have run longest.
	CreateIndex uint64
}
