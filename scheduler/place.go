package scheduler

import "slices"

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
