package scheduler

import (
	"fmt"
	"strings"
)

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
