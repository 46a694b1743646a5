package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Schedule reconciles the apps in in.Requests against the cluster in
// in.Nodes and in.Allocations and returns the plan. It is deterministic: the
// same Input and Options give the same Plan, whatever the order of the input
// slices.
//
// For each request, allocations on READY nodes count as running replicas;
// the missing ones are placed, the surplus is stopped (most loaded node
// first). Allocations on DOWN or unknown nodes are stopped and replaced;
// allocations on DRAINING nodes are replaced, and stopped as their
// replacements are placed (all of them once the app has enough replicas).
//
// Requests are placed largest first (by dominant share of the cluster's
// ready capacity), like first-fit-decreasing, so small requests fill the
// gaps the large ones leave; ties are ordered by shape, then app id.
//
// Schedule fails only when the input as a whole is malformed (ErrInvalidInput).
// An invalid request is reported in Plan.Unplaced and the others proceed.
func Schedule(in Input, opts Options) (Plan, error) {
	if opts.SampleSize < 0 {
		return Plan{}, fmt.Errorf("%w: sample size %d < 0", ErrInvalidInput, opts.SampleSize)
	}
	c, err := newCluster(in.Nodes, opts.Seed)
	if err != nil {
		return Plan{}, err
	}
	reqs, err := indexRequests(in.Requests)
	if err != nil {
		return Plan{}, err
	}
	if err := c.addAllocations(in.Allocations, reqs); err != nil {
		return Plan{}, err
	}
	order := c.requestOrder(reqs)

	s := scheduling{c: c, in: &in, opts: &opts}
	total := 0
	for _, r := range reqs.list {
		if missing := r.req.Replicas - len(r.ready); missing > 0 {
			total += missing
		}
	}
	s.plan.Placements = make([]Placement, 0, min(total, MaxReplicas))
	for _, k := range order {
		s.reconcile(reqs.list[k])
	}
	return s.plan, nil
}

// appState is one request and the allocations of its app, by node state.
type appState struct {
	req      *Request
	invalid  error
	ready    []int32 // allocation indexes
	draining []int32
	down     []int32
	unknown  []int32
}

type requestIndex struct {
	list  []*appState
	byApp map[string]*appState
}

func indexRequests(reqs []Request) (requestIndex, error) {
	ri := requestIndex{list: make([]*appState, len(reqs)), byApp: make(map[string]*appState, len(reqs))}
	var dups []string
	for i := range reqs {
		r := &reqs[i]
		st := &appState{req: r, invalid: r.Validate()}
		ri.list[i] = st
		if _, dup := ri.byApp[r.AppID]; dup {
			dups = append(dups, fmt.Sprintf("%q", r.AppID))
			continue
		}
		ri.byApp[r.AppID] = st
	}
	if len(dups) > 0 {
		return ri, fmt.Errorf("%w: more than one request for app %s", ErrInvalidInput, strings.Join(dups, ", "))
	}
	return ri, nil
}

// addAllocations accounts every allocation on a live node as used, and files
// the allocations of requested apps by the state of their node.
func (c *cluster) addAllocations(allocs []Allocation, reqs requestIndex) error {
	var errs []string
	var seen map[string]struct{}
	if len(allocs) > 0 {
		seen = make(map[string]struct{}, len(allocs))
	}
	for k := range allocs {
		a := &allocs[k]
		if a.ID == "" {
			errs = append(errs, fmt.Sprintf("allocation #%d has an empty id", k))
		} else if _, dup := seen[a.ID]; dup {
			errs = append(errs, fmt.Sprintf("duplicate allocation id %q", a.ID))
		}
		seen[a.ID] = struct{}{}
		if !a.Resources.valid() {
			errs = append(errs, fmt.Sprintf("allocation %q: resources %s out of range [0, MaxQuantity]", a.ID, a.Resources))
		}
		st := reqs.byApp[a.AppID]
		i, known := c.index[a.NodeID]
		switch {
		case !known:
			if st != nil {
				st.unknown = append(st.unknown, int32(k))
			}
		case c.live(i):
			c.use(i, a.Resources, a.HostPorts)
			if st != nil {
				if c.status[i] == NodeReady {
					st.ready = append(st.ready, int32(k))
				} else {
					st.draining = append(st.draining, int32(k))
				}
			}
		default:
			if st != nil {
				st.down = append(st.down, int32(k))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidInput, strings.Join(errs, "; "))
	}
	return nil
}

// requestOrder sorts requests by dominant share of the ready capacity,
// largest first, then by shape (so that requests of the same shape follow
// each other and can share a heap), then by app id.
func (c *cluster) requestOrder(reqs requestIndex) []int {
	var tot [3]float64
	for i, a := range c.alloc {
		if c.status[i] == NodeReady {
			tot[0] += float64(a.CPU)
			tot[1] += float64(a.MemoryMB)
			tot[2] += float64(a.StorageMB)
		}
	}
	type key struct {
		share float64
		shape uint64
		app   string
		k     int
	}
	keys := make([]key, len(reqs.list))
	for k, st := range reqs.list {
		r := st.req.Resources
		var share float64
		for d, v := range [3]int64{r.CPU, r.MemoryMB, r.StorageMB} {
			if tot[d] > 0 {
				share = max(share, float64(float64(v)/tot[d]))
			}
		}
		keys[k] = key{share: share, shape: shapeHash(st.req), app: st.req.AppID, k: k}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.share != b.share {
			return cmp.Compare(b.share, a.share)
		}
		if a.shape != b.shape {
			return cmp.Compare(a.shape, b.shape)
		}
		return strings.Compare(a.app, b.app)
	})
	order := make([]int, len(keys))
	for i, k := range keys {
		order[i] = k.k
	}
	return order
}

// scheduling is the state of one Schedule call.
type scheduling struct {
	c    *cluster
	in   *Input
	opts *Options
	plan Plan
	cr   compiled
}

func (s *scheduling) reconcile(st *appState) {
	req := st.req
	if st.invalid != nil {
		s.plan.Unplaced = append(s.plan.Unplaced, Unplaced{
			AppID:   req.AppID,
			Missing: max(0, req.Replicas-len(st.ready)),
			Reasons: Explanation{Invalid: st.invalid.Error()},
		})
		return
	}
	s.stopAll(st.unknown, StopNodeUnknown)
	s.stopAll(st.down, StopNodeDown)

	if len(st.ready) >= req.Replicas {
		s.stopMostLoaded(st.ready, len(st.ready)-req.Replicas, StopScaleDown)
		s.stopAll(st.draining, StopNodeDraining)
		return
	}
	need := req.Replicas - len(st.ready)
	placed := s.place(st, need)
	// Draining allocations keep running while they cover replicas that could
	// not be placed elsewhere.
	keep := min(len(st.draining), need-placed)
	s.stopMostLoaded(st.draining, len(st.draining)-keep, StopNodeDraining)
}

// place places up to need replicas of st's app and returns how many it did.
func (s *scheduling) place(st *appState, need int) int {
	c, req := s.c, st.req
	for _, k := range st.ready {
		c.countApp(c.index[s.in.Allocations[k].NodeID])
	}
	defer c.resetAppCounts()
	cr := &s.cr
	c.compile(req, cr)
	h := &c.heap
	n := len(c.nodes)
	limit := n
	if s.opts.SampleSize > 0 {
		limit = s.opts.SampleSize
	}
	if s.reusable(req) {
		// Only nodes whose usage or app count changed since the heap was
		// built can have changed feasibility or score.
		c.refresh(c.dirty, cr)
		c.refresh(c.touched, cr)
	} else {
		h.reset()
		c.cursor, c.scanned = 0, 0
		if n > 0 {
			c.cursor = int(seededHash(s.opts.Seed, req.AppID) % uint64(n))
		}
	}
	c.last = req

	var ports []HostPort
	if len(req.HostPorts) > 0 {
		ports = slices.Clone(req.HostPorts)
	}
	placed := 0
	for placed < need {
		if h.len() == 0 {
			// (Re)fill with the next `limit` feasible nodes. Nodes scanned
			// before and dropped are infeasible for this request for good:
			// placements only ever take resources away.
			for c.scanned < n && h.len() < limit {
				i := int32(c.cursor)
				if c.cursor++; c.cursor == n {
					c.cursor = 0
				}
				c.scanned++
				if !c.feasible(i, cr) {
					continue
				}
				if need-placed == 1 {
					h.pushBest(i, c.score(i, cr))
				} else {
					h.push(i, c.score(i, cr))
				}
			}
			if h.len() == 0 {
				s.plan.Unplaced = append(s.plan.Unplaced, Unplaced{
					AppID: req.AppID, Missing: need - placed, Reasons: c.explain(req),
				})
				s.decided()
				return placed
			}
		}
		i := h.top()
		c.use(i, req.Resources, req.HostPorts)
		c.countApp(i)
		s.plan.Placements = append(s.plan.Placements, Placement{
			AppID: req.AppID, NodeID: c.nodes[i].ID, Resources: req.Resources, HostPorts: ports,
		})
		placed++
		s.decided()
		if c.stillFeasible(i, cr) {
			h.update(i, c.score(i, cr))
		} else {
			h.remove(i)
		}
	}
	return placed
}

// reusable reports whether the heap left by the previous request can serve
// req: same shape (so the same nodes are feasible, with the same scores,
// except where usage or app counts changed, see refresh) and every node
// scanned (no sampling).
func (s *scheduling) reusable(req *Request) bool {
	c := s.c
	return !s.opts.noReuse && c.last != nil && s.opts.SampleSize == 0 && sameShape(c.last, req)
}

// sameShape reports whether two requests ask for the same thing per replica.
func sameShape(a, b *Request) bool {
	if a.Resources != b.Resources || a.Strategy != b.Strategy || a.MaxPerNode != b.MaxPerNode ||
		!slices.Equal(a.HostPorts, b.HostPorts) || len(a.Constraints) != len(b.Constraints) {
		return false
	}
	for k := range a.Constraints {
		x, y := &a.Constraints[k], &b.Constraints[k]
		if x.Key != y.Key || x.Op != y.Op || !slices.Equal(x.Values, y.Values) {
			return false
		}
	}
	return true
}

// shapeHash hashes what sameShape compares, so sorting by it makes requests
// of the same shape adjacent.
func shapeHash(r *Request) uint64 {
	h := mix64(uint64(r.Resources.CPU))
	h = mix64(h ^ uint64(r.Resources.MemoryMB))
	h = mix64(h ^ uint64(r.Resources.StorageMB))
	h = mix64(h ^ uint64(r.Strategy)<<32 ^ uint64(r.MaxPerNode))
	for _, p := range r.HostPorts {
		h = mix64(h ^ uint64(p.key()))
	}
	for _, con := range r.Constraints {
		h = mix64(h ^ hashString(con.Key) ^ hashString(string(con.Op)))
		for _, v := range con.Values {
			h = mix64(h ^ hashString(v))
		}
	}
	return h
}

func (s *scheduling) decided() {
	if s.opts.onDecision != nil {
		s.opts.onDecision()
	}
}

func (s *scheduling) stop(k int32, reason StopReason) {
	a := &s.in.Allocations[k]
	s.plan.Stops = append(s.plan.Stops, Stop{AllocationID: a.ID, AppID: a.AppID, NodeID: a.NodeID, Reason: reason})
}

// stopAll stops every allocation in ks, in allocation id order.
func (s *scheduling) stopAll(ks []int32, reason StopReason) {
	if len(ks) == 0 {
		return
	}
	sorted := slices.Clone(ks)
	slices.SortFunc(sorted, func(a, b int32) int {
		return strings.Compare(s.in.Allocations[a].ID, s.in.Allocations[b].ID)
	})
	for _, k := range sorted {
		s.stop(k, reason)
	}
}

// stopMostLoaded stops n of the allocations in ks, one at a time from the
// node that is the most allocated at that moment (counting the stops already
// chosen as gone), ties by allocation id.
func (s *scheduling) stopMostLoaded(ks []int32, n int, reason StopReason) {
	if n <= 0 {
		return
	}
	if n >= len(ks) {
		s.stopAll(ks, reason)
		return
	}
	c := s.c
	left := slices.Clone(ks)
	gone := make(map[int32]Resources)
	for ; n > 0; n-- {
		best, bestLoad := -1, int64(0)
		for j, k := range left {
			a := &s.in.Allocations[k]
			i := c.index[a.NodeID]
			load := allocatedPPM(c.alloc[i].Sub(c.free[i]).Sub(gone[i]), &c.inv[i])
			if best < 0 || load > bestLoad ||
				(load == bestLoad && a.ID < s.in.Allocations[left[best]].ID) {
				best, bestLoad = j, load
			}
		}
		k := left[best]
		i := c.index[s.in.Allocations[k].NodeID]
		gone[i] = gone[i].Add(s.in.Allocations[k].Resources)
		s.stop(k, reason)
		left[best] = left[len(left)-1]
		left = left[:len(left)-1]
	}
}
