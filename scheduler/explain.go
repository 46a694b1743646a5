package scheduler

import (
	"slices"
	"strconv"
	"strings"
)

// Explanation says why replicas could not be placed: how many nodes were
// considered, how many passed every filter, and how many failed each filter
// (each node counted under the first filter it failed).
type Explanation struct {
	Nodes     int
	Available int
	Failures  []FilterFailure // count descending, then reason ascending
	// Invalid is set, instead of the counts, when the request itself is
	// invalid and was not scheduled at all.
	Invalid string
}

// FilterFailure is the number of nodes rejected by one filter.
type FilterFailure struct {
	Reason string // the filter's Explain text
	Nodes  int
}

// String renders e like the Kubernetes scheduler does:
//
//	0/3 nodes available: 2 insufficient memory, 1 draining
func (e Explanation) String() string {
	if e.Invalid != "" {
		return e.Invalid
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.Available))
	b.WriteByte('/')
	b.WriteString(strconv.Itoa(e.Nodes))
	b.WriteString(" nodes available")
	for i, f := range e.Failures {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(f.Nodes))
		b.WriteByte(' ')
		b.WriteString(f.Reason)
	}
	return b.String()
}

// Explain runs filters over nodes and counts, per filter, the nodes it was
// the first to reject.
func Explain(nodes []NodeInfo, filters []Filter) Explanation {
	var ex explainer
	for i := range nodes {
		ex.add(&nodes[i], filters)
	}
	return ex.result()
}

type explainer struct {
	nodes, available int
	counts           map[string]int
}

func (ex *explainer) add(n *NodeInfo, filters []Filter) {
	ex.nodes++
	for _, f := range filters {
		if !f.Check(n) {
			if ex.counts == nil {
				ex.counts = make(map[string]int)
			}
			ex.counts[f.Explain()]++
			return
		}
	}
	ex.available++
}

func (ex *explainer) result() Explanation {
	e := Explanation{Nodes: ex.nodes, Available: ex.available}
	for reason, n := range ex.counts {
		e.Failures = append(e.Failures, FilterFailure{Reason: reason, Nodes: n})
	}
	slices.SortFunc(e.Failures, func(a, b FilterFailure) int {
		if a.Nodes != b.Nodes {
			return b.Nodes - a.Nodes
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return e
}
