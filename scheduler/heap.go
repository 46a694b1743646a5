package scheduler

// candidates is a binary max-heap of node indexes ordered by score, then by
// node index. Node indexes are in the cluster's canonical order (seeded hash
// of the id, then id), so equal scores are broken by that hash, whatever the
// input order. It allocates only when it grows.
type candidates struct {
	idx   []int32
	score []int64 // by node index; only entries of nodes in idx are meaningful
}

func (h *candidates) better(a, b int32) bool {
	sa, sb := h.score[a], h.score[b]
	if sa != sb {
		return sa > sb
	}
	return a < b
}

func (h *candidates) reset()         { h.idx = h.idx[:0] }
func (h *candidates) len() int       { return len(h.idx) }
func (h *candidates) top() int32     { return h.idx[0] }
func (h *candidates) append(i int32) { h.idx = append(h.idx, i) }

// init restores the heap order after appends.
func (h *candidates) init() {
	for i := len(h.idx)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// pop removes the top.
func (h *candidates) pop() {
	last := len(h.idx) - 1
	h.idx[0] = h.idx[last]
	h.idx = h.idx[:last]
	if last > 0 {
		h.down(0)
	}
}

// fixTop restores the order after the top's score changed.
func (h *candidates) fixTop() { h.down(0) }

func (h *candidates) down(i int) {
	n := len(h.idx)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		best := l
		if r := l + 1; r < n && h.better(h.idx[r], h.idx[l]) {
			best = r
		}
		if !h.better(h.idx[best], h.idx[i]) {
			return
		}
		h.idx[i], h.idx[best] = h.idx[best], h.idx[i]
		i = best
	}
}
