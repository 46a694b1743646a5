package controlplane_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// regInput is one operation on an environment's description, seen as a register.
type regInput struct {
	key   string // environment id
	write bool
	value string // written value (write)
}

// regOutput is what a read returned. Writes carry no output: a write that
// failed is recorded with an unbounded return time (it may or may not have
// been applied), one that succeeded with its return time.
type regOutput struct {
	value string
}

// registerModel is a set of independent registers, one per environment,
// each starting empty (environments are created without a description).
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(regInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		in := input.(regInput)
		if in.write {
			return true, in.value
		}
		return output.(regOutput).value == state.(string), state
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(regInput)
		if in.write {
			return fmt.Sprintf("put(%q)", in.value)
		}
		return fmt.Sprintf("get() -> %q", output.(regOutput).value)
	},
	DescribeState: func(state interface{}) string { return fmt.Sprintf("%q", state) },
}

// linClients holds one connection per server slot, redialled when a server
// restarts on new ports.
type linClients struct {
	t     *testing.T
	mu    sync.Mutex
	conns []*grpc.ClientConn
}

func (c *linClients) set(i int, conn *grpc.ClientConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conns[i] = conn
}

func (c *linClients) envs(i int) atollv1.EnvironmentServiceClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	return atollv1.NewEnvironmentServiceClient(c.conns[i])
}

// TestLinearizableEnvironmentsUnderLeaderFailure runs concurrent Updates
// (each writing a unique description) and linearizable Gets through random
// servers of a 3-server cluster while the leader is killed and restarted,
// and checks the history with porcupine against one register per
// environment. A failed Update is modelled as possibly applied at any time
// after its call; a failed Get is dropped (reads have no effect).
//
// It runs once with a leadership check (VerifyLeader round) per read and once
// with read leases (Config.ReadLease), the path that answers reads without a
// round.
func TestLinearizableEnvironmentsUnderLeaderFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-injection workload")
	}
	t.Run("verify-leader", func(t *testing.T) { linearizabilityUnderLeaderFailure(t) })
	t.Run("read-lease", func(t *testing.T) {
		linearizabilityUnderLeaderFailure(t, func(_ int, c *controlplane.Config) { c.ReadLease = c.LeaderLeaseTimeout })
	})
}

func linearizabilityUnderLeaderFailure(t *testing.T, opts ...cptest.Option) {
	const (
		nServers   = 3
		nEnvs      = 3
		nClients   = 4
		opsPerCli  = 40
		workload   = 40 * time.Second // hard cap on the workload phase
		opTimeout  = 3 * time.Second
		killAfter  = 1000 * time.Millisecond
		downFor    = 1000 * time.Millisecond
		checkLimit = 30 * time.Second
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	c := cptest.NewCluster(t, nServers, opts...)
	ctx := cptest.Ctx(t, c.AdminToken)

	cl := &linClients{t: t, conns: make([]*grpc.ClientConn, nServers)}
	for i, s := range c.Servers {
		cl.set(i, cptest.Conn(t, s))
	}
	keys := make([]string, nEnvs)
	for i := range keys {
		e, err := cl.envs(0).CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: fmt.Sprintf("lin-%d", i)})
		if err != nil {
			t.Fatalf("create environment %d: %v", i, err)
		}
		keys[i] = e.Id
	}

	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var restartedAt atomic.Int64 // set below; declared here for after()
	after := func(call int64) bool { r := restartedAt.Load(); return r != 0 && call >= r }
	stop := start.Add(workload)

	var (
		hmu     sync.Mutex
		history []porcupine.Operation
		nextAmb = nClients // client ids for ambiguous writes, one each (for the visualization)
		counts  struct{ ok, ambiguous, failedReads int }
	)
	record := func(op porcupine.Operation) {
		hmu.Lock()
		defer hmu.Unlock()
		history = append(history, op)
	}

	// restartedAt (above) is when the killed leader was started again (0
	// before). Each client goes on past opsPerCli until it has completed an
	// operation called after that: the cluster's recovery, not its speed on a
	// loaded machine, is what the test asserts.
	recovered := make([]bool, nClients)
	var wg sync.WaitGroup
	for client := 0; client < nClients; client++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(client), seed))
			for i := 0; (i < opsPerCli || !recovered[client]) && time.Now().Before(stop); i++ {
				key := keys[rng.IntN(nEnvs)]
				srv := rng.IntN(nServers)
				envs := cl.envs(srv)
				octx, cancel := context.WithTimeout(ctx, opTimeout)
				if rng.IntN(2) == 0 {
					val := fmt.Sprintf("c%d-op%d", client, i)
					in := regInput{key: key, write: true, value: val}
					call := now()
					_, err := envs.UpdateEnvironment(octx, &atollv1.UpdateEnvironmentRequest{
						EnvironmentId: key,
						Environment:   &atollv1.Environment{Description: val},
						UpdateMask:    &fieldmaskpb.FieldMask{Paths: []string{"description"}},
					})
					ret := now()
					hmu.Lock()
					if err != nil {
						// Unknown outcome: it may have been committed (or be
						// committed later by a new leader).
						history = append(history, porcupine.Operation{ClientId: nextAmb, Input: in, Call: call, Output: regOutput{}, Return: math.MaxInt64})
						nextAmb++
						counts.ambiguous++
					} else {
						history = append(history, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: regOutput{}, Return: ret})
						counts.ok++
						recovered[client] = recovered[client] || after(call)
					}
					hmu.Unlock()
				} else {
					call := now()
					e, err := envs.GetEnvironment(octx, &atollv1.GetEnvironmentRequest{EnvironmentId: key})
					ret := now()
					if err != nil {
						hmu.Lock()
						counts.failedReads++
						hmu.Unlock()
					} else {
						record(porcupine.Operation{ClientId: client, Input: regInput{key: key}, Call: call, Output: regOutput{value: e.Description}, Return: ret})
						hmu.Lock()
						counts.ok++
						recovered[client] = recovered[client] || after(call)
						hmu.Unlock()
					}
				}
				cancel()
				time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
			}
		}()
	}

	// The fault: kill the leader mid-workload, restart it on its data dir.
	var killed string
	time.Sleep(killAfter)
	l := c.WaitLeader()
	li := c.Index(l)
	killed = l.ID()
	c.Kill(li)
	time.Sleep(downFor)
	s := c.Restart(li)
	cl.set(li, cptest.Conn(t, s))
	restartedAt.Store(now())
	wg.Wait()
	elapsed := time.Since(start)
	c.WaitMembers(nServers)

	hmu.Lock()
	defer hmu.Unlock()
	t.Logf("killed leader %s; %d ops in %v: %d completed, %d writes with unknown outcome, %d failed reads",
		killed, len(history)+counts.failedReads, elapsed.Round(time.Millisecond), counts.ok, counts.ambiguous, counts.failedReads)
	for client, ok := range recovered {
		if !ok {
			t.Fatalf("client %d completed no operation after the killed leader was restarted (%d completed in all, within %v): the cluster did not recover", client, counts.ok, workload)
		}
	}

	res, info := porcupine.CheckOperationsVerbose(registerModel, history, checkLimit)
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Fatalf("porcupine gave up after %v on %d operations", checkLimit, len(history))
	default:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("atoll-linearizability-%d.html", time.Now().UnixNano()))
		if err := porcupine.VisualizePath(registerModel, info, path); err != nil {
			t.Logf("writing visualization: %v", err)
		} else {
			t.Logf("visualization: %s", path)
		}
		t.Fatalf("history of %d operations is not linearizable", len(history))
	}
	c.WaitConverged(20 * time.Second)
}

// TestRegisterModelRejectsStaleRead checks the model itself: a read that
// returns an overwritten value after the overwrite was acknowledged is not
// linearizable, and a write with an unknown outcome may take effect late.
func TestRegisterModelRejectsStaleRead(t *testing.T) {
	put := func(c int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: regInput{key: "e", write: true, value: v}, Call: call, Output: regOutput{}, Return: ret}
	}
	get := func(c int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: regInput{key: "e"}, Call: call, Output: regOutput{value: v}, Return: ret}
	}
	stale := []porcupine.Operation{put(0, "a", 0, 10), put(0, "b", 20, 30), get(1, "a", 40, 50)}
	if porcupine.CheckOperations(registerModel, stale) {
		t.Fatal("stale read accepted")
	}
	late := []porcupine.Operation{put(0, "a", 0, 10), put(2, "b", 20, math.MaxInt64), get(1, "a", 40, 50), get(1, "b", 60, 70)}
	if !porcupine.CheckOperations(registerModel, late) {
		t.Fatal("write with unknown outcome that applied late rejected")
	}
}
