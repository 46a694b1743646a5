package controlplane_test

// Replicated write throughput on a 3-server loopback cluster (real raft,
// boltdb with fsync, gRPC), see BENCHMARKS.md:
//
//	go test ./controlplane -run '^$' -bench 'Replicated|RawRaftApply' -benchtime 20000x -count 1

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

var benchClients = []int{1, 64}

// benchCluster starts 3 servers and raises the org quota so creates of tiny
// environments never hit it.
func benchCluster(b *testing.B) (*cptest.Cluster, context.Context) {
	controlplane.TuneGC() // as the atoll binary runs
	c := cptest.NewCluster(b, 3, func(_ int, cfg *controlplane.Config) {
		cfg.LogLevel = "error"
		// ATOLL_BENCH_READ_LEASE=1 measures reads with Config.ReadLease.
		if os.Getenv("ATOLL_BENCH_READ_LEASE") != "" {
			cfg.ReadLease = cfg.LeaderLeaseTimeout / 2
		}
	})
	// Not cptest.Ctx: its one-minute deadline is shorter than a long run.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	b.Cleanup(cancel)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.AdminToken)
	_, err := cptest.Orgs(b, c.WaitLeader()).UpdateOrganization(ctx, &atollv1.UpdateOrganizationRequest{
		Organization: &atollv1.Organization{Quota: &atollv1.Resources{Cpu: math.MaxInt32, Memory: math.MaxInt32, Storage: math.MaxInt32}},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"quota"}},
	})
	if err != nil {
		b.Fatalf("raise org quota: %v", err)
	}
	return c, ctx
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runClients splits b.N operations among n goroutines and returns the
// per-operation latencies.
func runClients(b *testing.B, n int, op func(client, i int) error) []time.Duration {
	var next atomic.Int64
	lat := make([][]time.Duration, n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	b.ResetTimer()
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				start := time.Now()
				if err := op(c, i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[c] = append(lat[c], time.Since(start))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err := firstErr.Load(); err != nil {
		b.Fatal(err)
	}
	return slices.Concat(lat...)
}

// BenchmarkReplicatedCreate: CreateEnvironment over gRPC against the leader
// with 1 and 64 concurrent clients; meanwhile one reader issues
// linearizable GetEnvironment calls (about 1,000/s), whose latency is
// reported too.
func BenchmarkReplicatedCreate(b *testing.B) {
	c, ctx := benchCluster(b)
	leader := c.WaitLeader()
	conns := make([]*grpc.ClientConn, 8)
	for i := range conns {
		conns[i] = cptest.Conn(b, leader)
	}
	seed, err := atollv1.NewEnvironmentServiceClient(conns[0]).CreateEnvironment(ctx, smallEnv("seed"))
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range benchClients {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			run := fmt.Sprintf("c%d-n%d-%d", n, b.N, time.Now().UnixNano())
			clients := make([]atollv1.EnvironmentServiceClient, n)
			for i := range clients {
				clients[i] = atollv1.NewEnvironmentServiceClient(conns[i%len(conns)])
			}
			// Reader under load: linearizable Gets of an existing environment.
			stop := make(chan struct{})
			var gets []time.Duration
			var rwg sync.WaitGroup
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				rc := atollv1.NewEnvironmentServiceClient(conns[len(conns)-1])
				// Paced (about 1,000/s) so the reader measures latency under
				// the write load without becoming a second load.
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					start := time.Now()
					if _, err := rc.GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: seed.Id}); err != nil {
						b.Error(err)
						return
					}
					gets = append(gets, time.Since(start))
				}
			}()
			lat := runClients(b, n, func(cl, i int) error {
				_, err := clients[cl].CreateEnvironment(ctx, smallEnv(fmt.Sprintf("%s-%d", run, i)))
				return err
			})
			close(stop)
			rwg.Wait()
			el := b.Elapsed()
			b.ReportMetric(float64(b.N)/el.Seconds(), "creates/s")
			b.ReportMetric(ms(percentile(lat, 0.5)), "create-p50-ms")
			b.ReportMetric(ms(percentile(lat, 0.99)), "create-p99-ms")
			b.ReportMetric(ms(percentile(gets, 0.5)), "get-p50-ms")
			b.ReportMetric(ms(percentile(gets, 0.99)), "get-p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkRawRaftApply is the baseline: raft.Apply on the leader of a
// no-op command as large as a marshalled CreateEnvironment command (same
// replication, fsync and FSM batch; no gRPC, auth, validation or state
// writes), with the same concurrency.
func BenchmarkRawRaftApply(b *testing.B) {
	c, _ := benchCluster(b)
	leader := c.WaitLeader()
	st, _ := leader.State()
	org := st.Snapshot().Organizations()[0]
	create := &atollv1.Command{Time: timestamppb.Now(), Actor: "admin", OrgId: org.Id, Cmd: &atollv1.Command_CreateEnvironment{CreateEnvironment: &atollv1.CreateEnvironmentCmd{
		Environment: &atollv1.Environment{Id: "env_0123456789abcdefghij", Name: "c64-n20000-1763890000000000000-12345", Slug: "c64-n20000-1763890000000000000-12345",
			OrgId: org.Id, ProjectId: "prj_0123456789abcdefghij", ResourceQuota: &atollv1.Resources{Cpu: 1, Memory: 1, Storage: 1}},
		SlugDerived: true,
	}}}
	size := proto.Size(create)
	noop := &atollv1.Command{Time: create.Time, OrgId: org.Id}
	noop.Actor = string(make([]byte, size-proto.Size(noop)-2))
	data, err := proto.Marshal(noop)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("command size %d bytes (create %d)", len(data), size)
	r := leader.Raft()
	for _, n := range benchClients {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			lat := runClients(b, n, func(int, int) error {
				return r.Apply(data, 10*time.Second).Error()
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
			b.ReportMetric(ms(percentile(lat, 0.5)), "p50-ms")
			b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}

}
