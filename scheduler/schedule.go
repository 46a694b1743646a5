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
