package multihost_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/integration/multihost"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func requireDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-host test with containers")
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Skipf("no docker client: %v", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("docker engine unreachable in CI: %v", err)
		}
		t.Skipf("docker engine unreachable: %v", err)
	}
}

// create creates an environment through server i, retrying (bounded in
// count and time) while the cluster reports it is unavailable, e.g. just
// after an election. A retry that finds the name taken means an earlier
// attempt with an unknown outcome was applied: that environment is returned.
func create(t *testing.T, c *multihost.Cluster, i int, name string) *atollv1.Environment {
	t.Helper()
	var lastErr error
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; attempt < 20 && time.Now().Before(deadline); attempt++ {
		ctx, cancel := c.Ctx(5 * time.Second)
		e, err := c.Envs(i).CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: name})
		if status.Code(err) == codes.AlreadyExists && attempt > 0 {
			var l *atollv1.ListEnvironmentsResponse
			if l, err = c.Envs(i).ListEnvironments(ctx, &atollv1.ListEnvironmentsRequest{Search: name}); err == nil {
				for _, x := range l.Environments {
					if x.Name == name {
						e = x
					}
				}
			}
		}
		cancel()
		if err == nil && e != nil {
			return e
		}
		lastErr = err
		if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("create %q through %s: %v", name, c.Servers[i].ID, lastErr)
	return nil
}

func others(n int, except ...int) []int {
	var out []int
	for i := 0; i < n; i++ {
		skip := false
		for _, e := range except {
			skip = skip || i == e
		}
		if !skip {
			out = append(out, i)
		}
	}
	return out
}

// TestPartitionAndRestart runs three server containers and checks, with real
// processes and real network failures, that a partitioned leader cannot
// acknowledge writes while the majority elects a new leader and goes on, and
// that a partitioned or killed server catches up to the same state.
func TestPartitionAndRestart(t *testing.T) {
	requireDocker(t)
	start := time.Now()
	step := func(what string) { t.Logf("%6.1fs  %s", time.Since(start).Seconds(), what) }

	c := multihost.NewCluster(t, 3)
	step("3 servers up")
	peers, err := c.Peers(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 3 {
		t.Fatalf("peers: %v", peers)
	}
	for _, p := range peers {
		if !p.Voter {
			t.Fatalf("%s is not a voter: %v", p.Id, peers)
		}
	}

	// Writes through each server (followers forward to the leader).
	for i := range c.Servers {
		create(t, c, i, fmt.Sprintf("via-%d", i))
	}
	shared := create(t, c, 0, "shared")
	step("writes through every server")

	// Partition the leader away from the others.
	old := c.WaitLeader(20 * time.Second)
	majority := others(3, old)
	c.Disconnect(old)
	step(fmt.Sprintf("leader %s disconnected", c.Servers[old].ID))

	// The isolated old leader must not acknowledge a write, even while it
	// still believes it leads.
	splitErr := make(chan error, 1)
	go func() {
		ctx, cancel := c.Ctx(8 * time.Second)
		defer cancel()
		_, err := c.Envs(old).CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "split-brain"})
		splitErr <- err
	}()

	newLeader := c.WaitLeader(30*time.Second, majority...)
	step(fmt.Sprintf("majority elected %s", c.Servers[newLeader].ID))
	follower := others(3, old, newLeader)[0]
	create(t, c, follower, "after-partition")
	ctx, cancel := c.Ctx(10 * time.Second)
	_, err = c.Envs(follower).UpdateEnvironment(ctx, &atollv1.UpdateEnvironmentRequest{
		EnvironmentId: shared.Id,
		Environment:   &atollv1.Environment{Description: "majority"},
		UpdateMask:    &fieldmaskpb.FieldMask{Paths: []string{"description"}},
	})
	cancel()
	if err != nil {
		t.Fatalf("update through %s on the majority side: %v", c.Servers[follower].ID, err)
	}
	step(fmt.Sprintf("writes through follower %s of the majority", c.Servers[follower].ID))

	select {
	case err := <-splitErr:
		if err == nil {
			t.Fatalf("isolated old leader %s acknowledged a write", c.Servers[old].ID)
		}
		t.Logf("isolated old leader refused the write: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("create on the isolated old leader neither returned nor timed out")
	}
	// A linearizable read on the isolated server must fail, not return the
	// state from before the partition.
	ctx, cancel = c.Ctx(8 * time.Second)
	g, err := c.Envs(old).GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: shared.Id})
	cancel()
	if err == nil && g.Description != "majority" {
		t.Fatalf("isolated server %s answered a linearizable read with stale state (description %q)", c.Servers[old].ID, g.Description)
	}
	step("isolated server refused a write and a linearizable read")

	// Heal: the old leader rejoins as a follower and catches up; the write it
	// refused is gone.
	c.Connect(old)
	c.WaitLeader(30 * time.Second)
	hash := c.WaitConverged(30 * time.Second)
	step(fmt.Sprintf("partition healed, converged on %.12s", hash))
	ctx, cancel = c.Ctx(10 * time.Second)
	l, err := c.Envs(old).ListEnvironments(ctx, &atollv1.ListEnvironmentsRequest{Search: "split-brain"})
	cancel()
	if err != nil {
		t.Fatalf("list through the rejoined server: %v", err)
	}
	if len(l.Environments) != 0 {
		t.Fatalf("the write refused by the isolated leader was applied: %v", l.Environments)
	}

	// Kill a follower, write without it, start it again: it catches up.
	leader := c.WaitLeader(30 * time.Second)
	victim := -1
	for _, i := range others(3, leader) {
		if victim < 0 || i != 0 { // prefer a joined server over the bootstrap one
			victim = i
		}
	}
	c.Kill(victim)
	step(fmt.Sprintf("follower %s killed", c.Servers[victim].ID))
	for _, i := range others(3, victim) {
		create(t, c, i, fmt.Sprintf("while-down-%d", i))
	}
	c.Start(victim)
	step(fmt.Sprintf("follower %s started", c.Servers[victim].ID))
	hash = c.WaitConverged(30 * time.Second)
	step(fmt.Sprintf("converged on %.12s", hash))
	c.WaitVoters(3, 20*time.Second)

	ctx, cancel = c.Ctx(10 * time.Second)
	l, err = c.Envs(victim).ListEnvironments(ctx, &atollv1.ListEnvironmentsRequest{Stale: true, PageSize: 100})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"via-0": true, "via-1": true, "via-2": true, "shared": true, "after-partition": true}
	for _, i := range others(3, victim) {
		want[fmt.Sprintf("while-down-%d", i)] = true
	}
	for _, e := range l.Environments {
		delete(want, e.Name)
	}
	if len(want) != 0 {
		t.Fatalf("restarted server %s lacks environments %v", c.Servers[victim].ID, want)
	}
	step("done")
}

// TestBootstrapServerAndFullRestart restarts the bootstrap server (its
// container runs again with --bootstrap on its existing data dir), then
// kills all three servers at once and starts them again: the cluster
// re-forms from the data dirs with the same state and takes writes.
func TestBootstrapServerAndFullRestart(t *testing.T) {
	requireDocker(t)
	c := multihost.NewCluster(t, 3)
	create(t, c, 1, "before")
	c.Kill(0)
	create(t, c, 1, "while-bootstrap-down")
	c.Start(0)
	c.WaitVoters(3, 30*time.Second)
	hash := c.WaitConverged(30 * time.Second)

	for i := range c.Servers {
		c.Kill(i)
	}
	for i := range c.Servers {
		c.Start(i)
	}
	c.WaitVoters(3, 30*time.Second)
	if h := c.WaitConverged(30 * time.Second); h != hash {
		t.Fatalf("state changed across a full restart: %s, was %s", h, hash)
	}
	create(t, c, 2, "after-full-restart")
	c.WaitConverged(30 * time.Second)
	ctx, cancel := c.Ctx(10 * time.Second)
	defer cancel()
	l, err := c.Envs(0).ListEnvironments(ctx, &atollv1.ListEnvironmentsRequest{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"before": true, "while-bootstrap-down": true, "after-full-restart": true}
	for _, e := range l.Environments {
		delete(want, e.Name)
	}
	if len(want) != 0 {
		t.Fatalf("missing environments %v", want)
	}
}
