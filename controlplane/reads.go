package controlplane

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/atollhq/atoll/controlplane/apierr"
)

// Consistent reads on the leader.
//
// A read is linearizable when the leader, after the read arrived, confirms
// with a quorum that it still leads (raft VerifyLeader): every write
// acknowledged before the read is then in the leader's state, since a write
// is acknowledged only after the leader applied it. One VerifyLeader costs a
// heartbeat round trip to the followers and is queued behind the leader's
// log writes (an fsync), so concurrent reads share rounds: a read waits for
// the next round that starts after it arrived (never one already in flight),
// as in etcd's ReadIndex batching. This keeps reads strictly linearizable.
//
// With Config.ReadLease > 0, a successful round started at t0 also lets the
// leader answer reads without a round until t0+ReadLease. This is safe while
// no other leader can be elected before then: followers that acknowledged
// the round refuse votes and do not campaign until a heartbeat timeout after
// that contact, so ReadLease must stay below HeartbeatTimeout
// (Validate enforces ReadLease <= LeaderLeaseTimeout <= HeartbeatTimeout).
// It assumes clocks advance at similar rates and that an acknowledging
// follower does not restart and vote within the lease; off by default.

type verifyRound struct {
	done chan struct{}
	err  error
}

// readBarrier makes a read served by this (leader) server linearizable.
func (s *Server) readBarrier(ctx context.Context) error {
	if err := s.waitReady(ctx); err != nil {
		return err
	}
	for {
		if s.leaseValid() {
			return nil
		}
		s.verifyMu.Lock()
		var r *verifyRound
		if s.verifyCur == nil {
			r = &verifyRound{done: make(chan struct{})}
			s.verifyCur = r
			s.startVerify(r)
		} else {
			// The round in flight may have started before this read: wait for the next.
			if s.verifyNext == nil {
				s.verifyNext = &verifyRound{done: make(chan struct{})}
			}
			r = s.verifyNext
		}
		s.verifyMu.Unlock()
		select {
		case <-ctx.Done():
			return apierr.Unavailable("timed out confirming leadership for a consistent read: %v; retry, or read with stale", ctx.Err())
		case <-r.done:
		}
		if r.err != nil {
			return apierr.Unavailable("leadership could not be confirmed for a consistent read: %v; retry", r.err)
		}
		return nil
	}
}

// startVerify runs one VerifyLeader round; verifyMu is held.
func (s *Server) startVerify(r *verifyRound) {
	go func() {
		t0 := s.monoNow()
		err := s.raft.VerifyLeader().Error()
		if err == nil && s.cfg.ReadLease > 0 {
			until := int64(t0 + s.cfg.ReadLease)
			for cur := s.leaseUntil.Load(); until > cur && !s.leaseUntil.CompareAndSwap(cur, until); cur = s.leaseUntil.Load() {
			}
		}
		s.verifyMu.Lock()
		r.err = err
		close(r.done)
		s.verifyCur = s.verifyNext
		s.verifyNext = nil
		if s.verifyCur != nil {
			s.startVerify(s.verifyCur)
		}
		s.verifyMu.Unlock()
	}()
}

// monoNow is a monotonic clock reading.
func (s *Server) monoNow() time.Duration { return time.Since(s.epoch) }

func (s *Server) leaseValid() bool {
	return s.cfg.ReadLease > 0 && s.raft.State() == raft.Leader && int64(s.monoNow()) < s.leaseUntil.Load()
}

// dropLease forgets the read lease (on any leadership change).
func (s *Server) dropLease() { s.leaseUntil.Store(0) }
