package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// cluster is the mutable view one Schedule call works on. Nodes are held in
// slices indexed by a canonical node index (sorted by seeded hash of the id,
// then id), so the result never depends on the order of Input.Nodes and the
// hot loop touches flat arrays only.
type cluster struct {
	nodes  []*Node // canonical order
	index  map[string]int32
	status []NodeStatus
	alloc  []Resources // allocatable
	free   []Resources // allocatable - allocations - placements
	inv    []invAlloc
	ports  []map[uint32]struct{} // used host ports; nil when none

	labels map[string]*labelColumn // built on first use of a key

	// Per-request scratch.
	appCount []int32 // replicas of the current app, by node index
	touched  []int32 // nodes with appCount > 0
	heap     candidates

	// The heap is kept from one request to the next one when they have the
	// same shape (see reusable): it then only needs the nodes in dirty (those
	// the previous request placed on or counted) and the new app's nodes
	// refreshed, instead of a scan of every node.
	last    *Request // request the heap was last built or refreshed for
	dirty   []int32
	cursor  int // next node to scan when the heap runs dry
	scanned int // nodes scanned for last
}

// labelColumn holds, for one label key, the interned value of every node
// (-1 when the node lacks the label), so constraints compare integers.
type labelColumn struct {
	ids  []int32
	dict map[string]int32
}

func newCluster(nodes []Node, seed int64) (*cluster, error) {
	n := len(nodes)
	type keyed struct {
		tie uint64
		at  int
	}
	order := make([]keyed, n)
	c := &cluster{index: make(map[string]int32, n)}
	var errs []string
	for i := range nodes {
		nd := &nodes[i]
		if nd.ID == "" {
			errs = append(errs, fmt.Sprintf("node #%d has an empty id", i))
		}
		if _, dup := c.index[nd.ID]; dup {
			errs = append(errs, fmt.Sprintf("duplicate node id %q", nd.ID))
		}
		if !nd.Allocatable.valid() {
			errs = append(errs, fmt.Sprintf("node %q: allocatable %s out of range [0, MaxQuantity]", nd.ID, nd.Allocatable))
		}
		c.index[nd.ID] = 0
		order[i] = keyed{tie: seededHash(seed, nd.ID), at: i}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidInput, strings.Join(errs, "; "))
	}
	slices.SortFunc(order, func(a, b keyed) int {
		if a.tie != b.tie {
			return cmp.Compare(a.tie, b.tie)
		}
		return strings.Compare(nodes[a.at].ID, nodes[b.at].ID)
	})
	c.nodes = make([]*Node, n)
	c.status = make([]NodeStatus, n)
	c.alloc = make([]Resources, n)
	c.free = make([]Resources, n)
	c.inv = make([]invAlloc, n)
	c.ports = make([]map[uint32]struct{}, n)
	c.appCount = make([]int32, n)
	c.heap = newCandidates(n)
	for i, k := range order {
		nd := &nodes[k.at]
		c.nodes[i] = nd
		c.index[nd.ID] = int32(i)
		c.status[i] = nd.Status
		c.alloc[i] = nd.Allocatable
		c.free[i] = nd.Allocatable
		c.inv[i] = inverse(nd.Allocatable)
	}
	return c, nil
}

// live reports whether allocations on node i still run and use resources.
func (c *cluster) live(i int32) bool {
	return c.status[i] == NodeReady || c.status[i] == NodeDraining
}

// use accounts r and ports as used on node i.
func (c *cluster) use(i int32, r Resources, ports []HostPort) {
	c.free[i] = c.free[i].Sub(r)
	if len(ports) == 0 {
		return
	}
	if c.ports[i] == nil {
		c.ports[i] = make(map[uint32]struct{}, len(ports))
	}
	for _, p := range ports {
		c.ports[i][p.key()] = struct{}{}
	}
}

func (c *cluster) column(key string) *labelColumn {
	if col, ok := c.labels[key]; ok {
		return col
	}
	col := &labelColumn{ids: make([]int32, len(c.nodes)), dict: make(map[string]int32)}
	for i, nd := range c.nodes {
		v, ok := nd.Labels[key]
		if !ok {
			col.ids[i] = -1
			continue
		}
		id, ok := col.dict[v]
		if !ok {
			id = int32(len(col.dict))
			col.dict[v] = id
		}
		col.ids[i] = id
	}
	if c.labels == nil {
		c.labels = make(map[string]*labelColumn)
	}
	c.labels[key] = col
	return col
}

// compiled is a request prepared for the hot loop.
type compiled struct {
	req         *Request
	need        Resources
	constraints []compiledConstraint
	ports       []uint32
	maxPerNode  int32
	spread      bool
}

type compiledConstraint struct {
	col  []int32
	ids  []int32 // interned values; values no node has are left out
	want bool    // true for = and in: the node's value must be among ids
}

func (cc *compiledConstraint) ok(i int32) bool {
	v := cc.col[i]
	in := false
	if v >= 0 {
		for _, id := range cc.ids {
			if id == v {
				in = true
				break
			}
		}
	}
	return in == cc.want
}

func (c *cluster) compile(req *Request, cr *compiled) {
	cr.req = req
	cr.need = req.Resources
	cr.maxPerNode = int32(req.MaxPerNode)
	cr.spread = req.Strategy == Spread
	cr.constraints = cr.constraints[:0]
	for k, con := range req.Constraints {
		col := c.column(con.Key)
		var ids []int32
		if k < cap(cr.constraints) {
			ids = cr.constraints[:k+1][k].ids[:0] // reuse the buffer
		}
		for _, v := range con.Values {
			if id, ok := col.dict[v]; ok {
				ids = append(ids, id)
			}
		}
		cr.constraints = append(cr.constraints, compiledConstraint{col: col.ids, ids: ids, want: con.Op == OpEqual || con.Op == OpIn})
	}
	cr.ports = cr.ports[:0]
	for _, p := range req.HostPorts {
		cr.ports = append(cr.ports, p.key())
	}
}

// feasible is the fused form of FiltersFor(req): every check, no
// allocation, cheapest first.
func (c *cluster) feasible(i int32, cr *compiled) bool {
	if c.status[i] != NodeReady || !c.fits(i, cr) {
		return false
	}
	for k := range cr.constraints {
		if !cr.constraints[k].ok(i) {
			return false
		}
	}
	return c.dynamicOK(i, cr)
}

// stillFeasible repeats the checks a placement on node i can change.
func (c *cluster) stillFeasible(i int32, cr *compiled) bool {
	return c.fits(i, cr) && c.dynamicOK(i, cr)
}

func (c *cluster) fits(i int32, cr *compiled) bool {
	f := &c.free[i]
	return cr.need.CPU <= f.CPU && cr.need.MemoryMB <= f.MemoryMB && cr.need.StorageMB <= f.StorageMB
}

// dynamicOK checks max-per-node and host ports.
func (c *cluster) dynamicOK(i int32, cr *compiled) bool {
	if cr.maxPerNode > 0 && c.appCount[i] >= cr.maxPerNode {
		return false
	}
	if len(cr.ports) > 0 && c.ports[i] != nil {
		for _, p := range cr.ports {
			if _, used := c.ports[i][p]; used {
				return false
			}
		}
	}
	return true
}

// score is the fused form of ScorerFor(req.Strategy).Score.
func (c *cluster) score(i int32, cr *compiled) int64 {
	used := c.alloc[i].Sub(c.free[i]).Add(cr.need)
	ppm := allocatedPPM(used, &c.inv[i])
	if cr.spread {
		return spreadScore(int(c.appCount[i]), ppm)
	}
	return ppm
}

// nodeInfo is node i as the Filter and Scorer types see it.
func (c *cluster) nodeInfo(i int32) NodeInfo {
	return NodeInfo{Node: c.nodes[i], Free: c.free[i], AppReplicas: int(c.appCount[i]), usedPorts: c.ports[i]}
}

// explain counts, over every node, the first filter of req that rejects it.
func (c *cluster) explain(req *Request) Explanation {
	filters := FiltersFor(req)
	var ex explainer
	for i := range c.nodes {
		ni := c.nodeInfo(int32(i))
		ex.add(&ni, filters)
	}
	return ex.result()
}

// refresh re-checks nodes whose state changed since the heap was built for
// a request of the same shape: it updates, removes or (when a max-per-node
// limit no longer applies) re-inserts them. Every other node keeps the
// feasibility and score it had: its resources and ports did not change and
// neither app has replicas on it.
func (c *cluster) refresh(nodes []int32, cr *compiled) {
	h := &c.heap
	if len(nodes) > 0 {
		h.init() // O(n) once; each refresh is then O(log n)
	}
	for _, i := range nodes {
		ok := c.feasible(i, cr)
		switch {
		case h.has(i) && ok:
			h.update(i, c.score(i, cr))
		case h.has(i):
			h.remove(i)
		case ok:
			h.insert(i, c.score(i, cr))
		}
	}
}

// countApp adds one replica of the current app on node i.
func (c *cluster) countApp(i int32) {
	if c.appCount[i] == 0 {
		c.touched = append(c.touched, i)
	}
	c.appCount[i]++
}

// resetAppCounts clears the counts of the current app; the nodes it had
// replicas on become dirty for a reused heap.
func (c *cluster) resetAppCounts() {
	for _, i := range c.touched {
		c.appCount[i] = 0
	}
	c.dirty = append(c.dirty[:0], c.touched...)
	c.touched = c.touched[:0]
}
