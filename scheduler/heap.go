package scheduler

// candidates is a binary max-heap of node indexes ordered by score, then by
// node index. Node indexes are in the cluster's canonical order (seeded hash
// of the id, then id), so equal scores are broken by that hash, whatever the
// input order. pos lets a node already in the heap be updated or removed
// when its state changes. It allocates only when it grows.
//
// Ordering is lazy: the heap is built (O(n)) by the first top that needs
// it. For a request of one replica the scan only keeps the best at idx[0]
// (pushBest), and an update that keeps the top on top (bin-pack: a
// placement only raises the node's score) costs nothing, so the heap is
// never built unless the next request of the same shape reuses it.
type candidates struct {
	idx   []int32
	score []int64 // by node index; meaningful for nodes in idx
	pos   []int32 // by node index: position in idx, or -1
	order heapOrder
}

type heapOrder uint8

const (
	ordered   heapOrder = iota // idx is a heap
	topOnly                    // idx[0] is the best, the rest is unordered
	unordered                  // nothing is known
)

func newCandidates(n int) candidates {
	h := candidates{score: make([]int64, n), pos: make([]int32, n)}
	for i := range h.pos {
		h.pos[i] = -1
	}
	return h
}

func (h *candidates) better(a, b int32) bool {
	sa, sb := h.score[a], h.score[b]
	if sa != sb {
		return sa > sb
	}
	return a < b
}

func (h *candidates) len() int         { return len(h.idx) }
func (h *candidates) has(i int32) bool { return h.pos[i] >= 0 }

// top returns the best candidate.
func (h *candidates) top() int32 {
	if h.order == unordered {
		h.init()
	}
	return h.idx[0]
}

func (h *candidates) reset() {
	for _, i := range h.idx {
		h.pos[i] = -1
	}
	h.idx = h.idx[:0]
	h.order = ordered
}

// push appends node i with the given score, leaving the candidates
// unordered: the next top builds the heap.
func (h *candidates) push(i int32, score int64) {
	h.score[i] = score
	h.pos[i] = int32(len(h.idx))
	h.idx = append(h.idx, i)
	if len(h.idx) > 1 {
		h.order = unordered
	}
}

// pushBest is push for when one pick is likely all that is needed: it keeps
// the best at idx[0] (one comparison) instead of leaving a heap to build.
func (h *candidates) pushBest(i int32, score int64) {
	h.score[i] = score
	h.pos[i] = int32(len(h.idx))
	h.idx = append(h.idx, i)
	if len(h.idx) == 1 {
		return
	}
	if h.order == ordered {
		h.order = topOnly
	}
	if h.order == topOnly && h.better(i, h.idx[0]) {
		h.swap(0, len(h.idx)-1)
	}
}

// insert adds node i to an ordered heap.
func (h *candidates) insert(i int32, score int64) {
	h.score[i] = score
	h.pos[i] = int32(len(h.idx))
	h.idx = append(h.idx, i)
	h.up(len(h.idx) - 1)
}

// init makes idx a heap.
func (h *candidates) init() {
	if h.order == ordered {
		return
	}
	for k := len(h.idx)/2 - 1; k >= 0; k-- {
		h.down(k)
	}
	h.order = ordered
}

// update sets the score of node i, which is a candidate.
func (h *candidates) update(i int32, score int64) {
	old := h.score[i]
	h.score[i] = score
	k := int(h.pos[i])
	switch h.order {
	case ordered:
		if !h.up(k) {
			h.down(k)
		}
	case topOnly:
		if k != 0 || score < old {
			h.order = unordered
		}
	}
}

// remove takes node i, which is a candidate, out.
func (h *candidates) remove(i int32) {
	k := int(h.pos[i])
	last := len(h.idx) - 1
	if k != last {
		h.swap(k, last)
	}
	h.idx = h.idx[:last]
	h.pos[i] = -1
	if last == 0 {
		h.order = ordered
		return
	}
	if h.order != ordered {
		h.order = unordered
		return
	}
	if k != last && !h.up(k) {
		h.down(k)
	}
}

func (h *candidates) swap(a, b int) {
	h.idx[a], h.idx[b] = h.idx[b], h.idx[a]
	h.pos[h.idx[a]] = int32(a)
	h.pos[h.idx[b]] = int32(b)
}

func (h *candidates) up(k int) bool {
	moved := false
	for k > 0 {
		p := (k - 1) / 2
		if !h.better(h.idx[k], h.idx[p]) {
			break
		}
		h.swap(k, p)
		k, moved = p, true
	}
	return moved
}

func (h *candidates) down(k int) {
	n := len(h.idx)
	for {
		l := 2*k + 1
		if l >= n {
			return
		}
		best := l
		if r := l + 1; r < n && h.better(h.idx[r], h.idx[l]) {
			best = r
		}
		if !h.better(h.idx[best], h.idx[k]) {
			return
		}
		h.swap(k, best)
		k = best
	}
}
