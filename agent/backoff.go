package agent

import (
	"math/rand/v2"
	"time"
)

// backoff doubles from min to max with ±20% jitter.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	j := time.Duration(float64(b.cur) * (0.8 + 0.4*rand.Float64()))
	return min(j, b.max)
}

func (b *backoff) reset() { b.cur = 0 }
