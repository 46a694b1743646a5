package controlplane_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// smallEnv asks for a tiny quota so many environments fit the org quota.
func smallEnv(name string) *atollv1.CreateEnvironmentRequest {
	return &atollv1.CreateEnvironmentRequest{Name: name, ResourceQuota: &atollv1.Resources{Cpu: 1, Memory: 1, Storage: 1}}
}

// createRetrying creates an environment through s as a client would: an
// UNAVAILABLE answer (a leadership change on a loaded machine; the write may
// or may not have been applied) is retried for up to 20 s, and a retry that
// finds the name taken takes the environment the earlier try created.
func createRetrying(t *testing.T, ctx context.Context, s *controlplane.Server, name string) string {
	t.Helper()
	envs := cptest.Envs(t, s)
	deadline := time.Now().Add(20 * time.Second)
	retried := false
	for {
		e, err := envs.CreateEnvironment(ctx, smallEnv(name))
		switch {
		case err == nil:
			return e.Id
		case retried && status.Code(err) == codes.AlreadyExists:
			l, err := envs.ListEnvironments(ctx, &atollv1.ListEnvironmentsRequest{Search: name})
			for _, e := range l.GetEnvironments() {
				if e.Name == name {
					return e.Id
				}
			}
			t.Fatalf("create %s via %s: name taken but not listed: %v", name, s.ID(), err)
		case status.Code(err) != codes.Unavailable || time.Now().After(deadline):
			t.Fatalf("create %s via %s: %v", name, s.ID(), err)
		}
		retried = true
		time.Sleep(50 * time.Millisecond) // client backoff between retries
	}
}

// requireOnAll checks that every id is in the state of every live server,
// reading each server's own store (no forwarding).
func requireOnAll(t *testing.T, c *cptest.Cluster, ids []string) {
	t.Helper()
	for _, s := range c.Live() {
		st, _ := s.State()
		tx := st.Snapshot()
		for _, id := range ids {
			if tx.Environment(id) == nil {
				t.Fatalf("acknowledged environment %s missing on server %s (applied index %d)", id, s.ID(), tx.AppliedIndex())
			}
		}
	}
}

func TestClusterFailoverAndCatchUp(t *testing.T) {
	c := cptest.NewCluster(t, 3)
	ctx := cptest.Ctx(t, c.AdminToken)
	leader := c.WaitLeader()
	followers := c.Followers()

	// Writes through a follower are forwarded and succeed.
	var acked []string
	for i := range 10 {
		acked = append(acked, createRetrying(t, ctx, followers[0], fmt.Sprintf("before-%d", i)))
	}

	// A writer keeps going through the surviving follower while the leader dies.
	survivor := followers[0]
	envs := cptest.Envs(t, survivor)
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	failed := 0
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			e, err := envs.CreateEnvironment(cctx, smallEnv(fmt.Sprintf("during-%d", i)))
			cancel()
			mu.Lock()
			if err == nil {
				acked = append(acked, e.Id)
			} else {
				failed++ // ambiguous: may or may not have been applied
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(5 * time.Millisecond) // back off while leadership moves
			}
		}
	}()
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	cptest.WaitFor(t, 20*time.Second, "writes before the kill", func() bool { return ackedCount() >= 20 })

	oldIdx := c.Index(leader)
	c.Kill(oldIdx)
	newLeader := c.WaitLeader()
	if newLeader == leader {
		t.Fatal("killed leader still reported as leader")
	}
	n := ackedCount()
	cptest.WaitFor(t, 30*time.Second, "writes acknowledged by the new leader", func() bool { return ackedCount() >= n+20 })
	close(stop)
	<-done
	t.Logf("acked %d writes, %d failed during failover", len(acked), failed)

	c.WaitConverged(30 * time.Second)
	requireOnAll(t, c, acked)

	// The killed server restarts on its data dir, rejoins and catches up.
	c.Restart(oldIdx)
	c.WaitMembers(3)
	hash := c.WaitConverged(30 * time.Second)
	if len(c.Live()) != 3 {
		t.Fatalf("want 3 live servers, have %d", len(c.Live()))
	}
	requireOnAll(t, c, acked)
	// And it keeps taking writes.
	if _, err := cptest.Envs(t, c.Servers[oldIdx]).CreateEnvironment(ctx, smallEnv("after-restart")); err != nil {
		t.Fatalf("create via restarted server: %v", err)
	}
	if h := c.WaitConverged(30 * time.Second); h == hash {
		t.Fatal("state hash did not change after a write")
	}
}

func TestClusterCatchUpFromSnapshot(t *testing.T) {
	const trailing = 16
	c := cptest.NewCluster(t, 3, cptest.Snapshots(64, trailing, 50*time.Millisecond))
	ctx := cptest.Ctx(t, c.AdminToken)
	leader := c.WaitLeader()
	envs := cptest.Envs(t, leader)

	for i := range 10 {
		if _, err := envs.CreateEnvironment(ctx, smallEnv(fmt.Sprintf("a-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitConverged(30 * time.Second)
	victim := c.Followers()[0]
	vi := c.Index(victim)
	victimLast := victim.Raft().LastIndex()
	c.Kill(vi)

	// Write until the live servers have snapshotted and compacted their logs
	// past everything the victim has: it can only catch up by snapshot.
	var ids []string
	compacted := func() bool {
		for _, s := range c.Live() {
			first, err := s.LogFirstIndex()
			if err != nil || first <= victimLast+1 {
				return false
			}
		}
		return true
	}
	for i := 0; !compacted(); i++ {
		if i > 5000 {
			t.Fatalf("logs not compacted past %d after %d writes", victimLast, i)
		}
		e, err := envs.CreateEnvironment(ctx, smallEnv(fmt.Sprintf("b-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.Id)
	}
	// A few more so the snapshot is not the very last entry.
	for i := range trailing {
		e, err := envs.CreateEnvironment(ctx, smallEnv(fmt.Sprintf("c-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.Id)
	}
	restoredBefore := cptest.RaftStat(victim, "last_snapshot_index")

	s := c.Restart(vi)
	c.WaitMembers(3)
	c.WaitConverged(30 * time.Second)
	requireOnAll(t, c, ids)
	snap := cptest.RaftStat(s, "last_snapshot_index")
	if snap <= victimLast || snap < restoredBefore {
		t.Fatalf("restarted server's last snapshot index %d: want > %d (its log end when killed), so it installed the leader's snapshot", snap, victimLast)
	}
	first, _ := s.LogFirstIndex()
	t.Logf("victim log ended at %d; after restart: last_snapshot_index=%d, log first index=%d, %d writes", victimLast, snap, first, len(ids))
}

func TestRaftPeersOverAPI(t *testing.T) {
	c := cptest.NewCluster(t, 3)
	ctx := cptest.Ctx(t, c.AdminToken)
	f := c.Followers()
	ops := cptest.Ops(t, f[0])
	// ListRaftPeers is served locally: wait until this follower has applied
	// every server's addresses.
	cptest.WaitFor(t, 10*time.Second, "follower to know every server", func() bool {
		st, _ := f[0].State()
		return len(st.Snapshot().Servers()) == 3
	})

	resp, err := ops.ListRaftPeers(ctx, &atollv1.ListRaftPeersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	leaders, voters := 0, 0
	for _, p := range resp.Peers {
		if p.Leader {
			leaders++
		}
		if p.Voter {
			voters++
		}
		if p.GrpcAddress == "" || p.Address == "" {
			t.Errorf("peer %s lacks addresses: %v", p.Id, p)
		}
	}
	if len(resp.Peers) != 3 || voters != 3 || leaders != 1 {
		t.Fatalf("want 3 voters and 1 leader, got %v", resp.Peers)
	}

	// Remove the other follower, asking through this one (forwarded to the leader).
	gone := f[1]
	if _, err := ops.RemoveRaftPeer(ctx, &atollv1.RemoveRaftPeerRequest{Id: gone.ID()}); err != nil {
		t.Fatalf("remove peer: %v", err)
	}
	c.Kill(c.Index(gone))
	resp, err = cptest.Ops(t, c.WaitLeader()).ListRaftPeers(ctx, &atollv1.ListRaftPeersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 2 {
		t.Fatalf("want 2 peers after removal, got %v", resp.Peers)
	}
	for _, p := range resp.Peers {
		if p.Id == gone.ID() {
			t.Fatalf("removed peer %s still listed", p.Id)
		}
	}
	if _, err := ops.RemoveRaftPeer(ctx, &atollv1.RemoveRaftPeerRequest{Id: "no-such-server"}); err == nil {
		t.Fatal("removing an unknown peer succeeded")
	}
	// The two remaining servers still have quorum.
	if _, err := cptest.Envs(t, f[0]).CreateEnvironment(ctx, smallEnv("after-remove")); err != nil {
		t.Fatalf("create after removing a peer: %v", err)
	}
}

// followerApplied waits until server s has applied index idx.
func followerApplied(t *testing.T, s *controlplane.Server, idx uint64) {
	t.Helper()
	cptest.WaitFor(t, 10*time.Second, fmt.Sprintf("%s to apply index %d", s.ID(), idx), func() bool { return s.Raft().AppliedIndex() >= idx })
}

func TestStaleAndLinearizableReads(t *testing.T) {
	c := cptest.NewCluster(t, 3)
	ctx := cptest.Ctx(t, c.AdminToken)
	leader := c.WaitLeader()
	f := c.Followers()[0]
	e, err := cptest.Envs(t, leader).CreateEnvironment(ctx, smallEnv("read-me"))
	if err != nil {
		t.Fatal(err)
	}
	fenvs := cptest.Envs(t, f)

	// Without stale, a follower forwards the read to the leader, which
	// confirms its leadership first: the write just acknowledged is visible.
	fwd := func() float64 {
		return metricValue(t, f, `atoll_api_forwarded_total{method="/atoll.v1.EnvironmentService/GetEnvironment"}`)
	}
	n0 := fwd()
	var hdr metadata.MD
	got, err := fenvs.GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: e.Id}, grpc.Header(&hdr))
	if err != nil || got.Id != e.Id {
		t.Fatalf("linearizable get via follower: %v %v", got, err)
	}
	if n := fwd(); n != n0+1 {
		t.Fatalf("forwarded GetEnvironment count went %v -> %v, want +1", n0, n)
	}
	if len(hdr.Get("x-atoll-index")) != 0 {
		t.Fatalf("linearizable read carries a staleness header: %v", hdr)
	}

	// With stale, the follower answers from its own state and says how fresh it is.
	followerApplied(t, f, e.CreateIndex)
	hdr = nil
	got, err = fenvs.GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: e.Id, Stale: true}, grpc.Header(&hdr))
	if err != nil || got.Id != e.Id {
		t.Fatalf("stale get via follower: %v %v", got, err)
	}
	idx := hdr.Get("x-atoll-index")
	if len(idx) != 1 {
		t.Fatalf("stale read lacks x-atoll-index: %v", hdr)
	}
	if v, err := strconv.ParseUint(idx[0], 10, 64); err != nil || v < e.CreateIndex {
		t.Fatalf("x-atoll-index %q, want >= %d", idx[0], e.CreateIndex)
	}
	if hdr.Get("x-atoll-known-leader")[0] != "true" || len(hdr.Get("x-atoll-last-contact")) != 1 {
		t.Fatalf("stale read headers: %v", hdr)
	}
	if n := fwd(); n != n0+1 {
		t.Fatalf("stale read was forwarded (count %v)", n)
	}
}

// Concurrent consistent reads share VerifyLeader rounds (and, with
// ReadLease, skip them); each still sees every write acknowledged before it.
func TestConcurrentConsistentReads(t *testing.T) {
	for _, lease := range []bool{false, true} {
		t.Run(fmt.Sprintf("lease=%v", lease), func(t *testing.T) {
			c := cptest.NewCluster(t, 3, func(_ int, cfg *controlplane.Config) {
				if lease {
					cfg.ReadLease = cfg.LeaderLeaseTimeout / 2
				}
			})
			ctx := cptest.Ctx(t, c.AdminToken)
			servers := c.Live()
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					writer := cptest.Envs(t, servers[w%3])
					reader := cptest.Envs(t, servers[(w+1)%3])
					for i := range 5 {
						e, err := writer.CreateEnvironment(ctx, smallEnv(fmt.Sprintf("w%d-%d", w, i)))
						if err != nil {
							errs <- err
							return
						}
						// Read right after the ack, via another server: must see it.
						if _, err := reader.GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: e.Id}); err != nil {
							errs <- fmt.Errorf("read own write %s: %w", e.Id, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		})
	}
}

// Removing the only voter is refused with a reason, not an internal error,
// and the server keeps serving.
func TestRemoveLastPeerRefused(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	s := c.WaitLeader()
	ctx := cptest.Ctx(t, c.AdminToken)
	_, err := atollv1.NewOperatorServiceClient(cptest.Conn(t, s)).RemoveRaftPeer(ctx, &atollv1.RemoveRaftPeerRequest{Id: s.ID()})
	if st, _ := status.FromError(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "only voter") {
		t.Fatalf("remove the only voter: %v, want FAILED_PRECONDITION naming it", err)
	}
	if _, err := cptest.Envs(t, s).CreateEnvironment(ctx, smallEnv("still-serving")); err != nil {
		t.Fatalf("create after the refused removal: %v", err)
	}
}
