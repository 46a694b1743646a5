package controlplane_test

// Placements per second with the plan committed through a 3-server loopback
// raft cluster (boltdb with fsync, real gRPC), see BENCHMARKS.md:
//
//	go test ./controlplane -run '^$' -bench 'SchedulerRaftCommit' -benchtime 1x -count 1 -timeout 30m

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func BenchmarkSchedulerRaftCommit(b *testing.B) {
	for _, tc := range []struct{ nodes, apps, replicas int }{
		{500, 200, 100},   // 20,000 instances
		{5000, 1000, 100}, // 100,000 instances
	} {
		b.Run(fmt.Sprintf("nodes=%d/instances=%d", tc.nodes, tc.apps*tc.replicas), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchSchedCommit(b, tc.nodes, tc.apps, tc.replicas)
			}
		})
	}
}

func benchSchedCommit(b *testing.B, nodes, apps, replicas int) {
	b.StopTimer()
	c := cptest.NewCluster(b, 3, func(_ int, cfg *controlplane.Config) {
		cfg.LogLevel = "error"
		cfg.NodeTTL = time.Hour // nodes are registered without agents
		// Production raft timeouts, not cptest.FastRaft: big plans on 2
		// cores must not look like a dead leader.
		d := controlplane.DefaultConfig()
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = d.HeartbeatTimeout, d.ElectionTimeout, d.LeaderLeaseTimeout
	})
	l := c.WaitLeader()
	ctx, cancel := context.WithTimeout(cptest.Ctx(b, c.AdminToken), time.Hour)
	defer cancel()
	conn := cptest.Conn(b, l)
	if _, err := atollv1.NewOrganizationServiceClient(conn).UpdateOrganization(ctx, &atollv1.UpdateOrganizationRequest{
		Organization: &atollv1.Organization{Quota: &atollv1.Resources{Cpu: math.MaxInt32, Memory: math.MaxInt32, Storage: math.MaxInt32}},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"quota"}},
	}); err != nil {
		b.Fatal(err)
	}
	envs := atollv1.NewEnvironmentServiceClient(conn)
	env, err := envs.CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "bench",
		ResourceQuota: &atollv1.Resources{Cpu: math.MaxInt32 / 2, Memory: math.MaxInt32 / 2, Storage: math.MaxInt32 / 2}})
	if err != nil {
		b.Fatal(err)
	}
	// Apps are created in a stopped environment; starting it hands the
	// whole demand to the scheduler at once.
	if _, err := envs.StopEnvironment(ctx, &atollv1.StopEnvironmentRequest{EnvironmentId: env.Id}); err != nil {
		b.Fatal(err)
	}
	parallel(b, nodes, 64, func(i int) error {
		// Mixed sizes: 4, 8 or 16 cores, 2 GiB of memory per core.
		cpu := int32(4000 << (i % 3))
		res := &atollv1.Resources{Cpu: cpu, Memory: cpu * 2, Storage: 200000}
		r, err := l.Apply(ctx, &atollv1.Command{Actor: "bench", Cmd: &atollv1.Command_UpsertNode{UpsertNode: &atollv1.UpsertNodeCmd{Node: &atollv1.Node{
			Id: api.NewID("node"), Name: fmt.Sprintf("host-%05d", i), Status: atollv1.NodeStatus_NODE_READY, Capacity: res, Allocatable: res}}}})
		if err == nil && r.Err != nil {
			err = r.Err
		}
		return err
	})
	appc := atollv1.NewAppServiceClient(conn)
	parallel(b, apps, 32, func(i int) error {
		_, err := appc.CreateApp(ctx, &atollv1.CreateAppRequest{EnvId: env.Id, App: &atollv1.App{
			Name: fmt.Sprintf("app-%04d", i), Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: "1"}},
			ResourceRequests: &atollv1.ResourceRequests{Cpu: fmt.Sprintf("%dm", 100+50*(i%4)), Memory: fmt.Sprintf("%dMi", 128<<(i%3))},
			Replicas:         int32(replicas),
		}})
		return err
	})
	want := apps * replicas
	reg := c.Configs[c.Index(l)].Registry.(*prometheus.Registry)
	evals0 := schedMetric(b, reg, "atoll_scheduler_evaluation_duration_seconds", nil)
	b.StartTimer()
	start := time.Now()
	if _, err := envs.StartEnvironment(ctx, &atollv1.StartEnvironmentRequest{EnvironmentId: env.Id}); err != nil {
		b.Fatal(err)
	}
	c.WaitState(10*time.Minute, fmt.Sprintf("%d instances placed", want), func(tx *state.Txn) bool {
		all, _ := tx.AllInstances()
		return len(all) >= want
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if c.WaitLeader() != l {
		b.Fatal("leadership changed during the benchmark")
	}
	tx := func() *state.Txn { st, _ := l.State(); return st.Snapshot() }()
	all, _ := tx.AllInstances()
	if len(all) != want {
		b.Fatalf("%d instances placed, want %d", len(all), want)
	}
	// Every follower holds the same placements.
	c.WaitConverged(time.Minute)
	b.ReportMetric(float64(want)/elapsed.Seconds(), "placements/s")
	b.ReportMetric(elapsed.Seconds(), "s-to-place-all")
	evals := schedMetric(b, reg, "atoll_scheduler_evaluation_duration_seconds", nil) - evals0
	b.ReportMetric(evals, "evaluations")
	b.ReportMetric(schedMetric(b, reg, "atoll_scheduler_plan_rejections_total", nil), "rejected-plans")
}

// parallel runs n calls of op over k goroutines and fails on the first error.
func parallel(b *testing.B, n, k int, op func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for w := 0; w < k; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					once.Do(func() { first = fmt.Errorf("op %d: %w", i, err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}
