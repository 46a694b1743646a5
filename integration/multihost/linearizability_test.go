package multihost_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/integration/multihost"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// regInput is one operation on an environment's description, seen as a register.
type regInput struct {
	key   string
	write bool
	value string
}

// registerModel: one register per environment (porcupine partition), each
// starting empty.
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
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(regInput)
		if in.write {
			return fmt.Sprintf("put(%q)", in.value)
		}
		return fmt.Sprintf("get() -> %q", output)
	},
	DescribeState: func(state interface{}) string { return fmt.Sprintf("%q", state) },
}

// TestLinearizableUnderPartition runs concurrent Updates and linearizable
// Gets through all three server containers while the leader is cut off
// from the others by a network partition (the isolated side keeps taking
// requests from clients) and then healed, and checks the history with
// porcupine. A failed Update is modelled as possibly applied; a failed Get
// is dropped.
func TestLinearizableUnderPartition(t *testing.T) {
	requireDocker(t)
	const (
		nEnvs      = 2
		nClients   = 4
		opsPerCli  = 50
		workload   = 15 * time.Second // hard cap
		opTimeout  = 3 * time.Second
		cutAfter   = 1500 * time.Millisecond
		cutFor     = 4 * time.Second
		checkLimit = 30 * time.Second
	)
	c := multihost.NewCluster(t, 3)
	keys := make([]string, nEnvs)
	for i := range keys {
		keys[i] = create(t, c, 0, fmt.Sprintf("lin-%d", i)).Id
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)

	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	stop := start.Add(workload)
	var (
		mu                     sync.Mutex
		history                []porcupine.Operation
		nextAmb                = nClients
		ok, ambiguous, badRead int
	)
	var wg sync.WaitGroup
	for client := 0; client < nClients; client++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(client), seed))
			for i := 0; i < opsPerCli && time.Now().Before(stop); i++ {
				key := keys[rng.IntN(nEnvs)]
				srv := rng.IntN(len(c.Servers))
				ctx, cancel := c.Ctx(opTimeout)
				if rng.IntN(2) == 0 {
					val := fmt.Sprintf("c%d-op%d", client, i)
					call := now()
					_, err := c.Envs(srv).UpdateEnvironment(ctx, &atollv1.UpdateEnvironmentRequest{
						EnvironmentId: key,
						Environment:   &atollv1.Environment{Description: val},
						UpdateMask:    &fieldmaskpb.FieldMask{Paths: []string{"description"}},
					})
					ret := now()
					op := porcupine.Operation{ClientId: client, Input: regInput{key: key, write: true, value: val}, Call: call, Output: "", Return: ret, Metadata: srv}
					mu.Lock()
					if err != nil {
						op.ClientId, op.Return = nextAmb, math.MaxInt64
						nextAmb++
						ambiguous++
					} else {
						ok++
					}
					history = append(history, op)
					mu.Unlock()
				} else {
					call := now()
					e, err := c.Envs(srv).GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: key})
					ret := now()
					mu.Lock()
					if err != nil {
						badRead++
					} else {
						ok++
						history = append(history, porcupine.Operation{ClientId: client, Input: regInput{key: key}, Call: call, Output: e.Description, Return: ret, Metadata: srv})
					}
					mu.Unlock()
				}
				cancel()
				time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
			}
		}()
	}

	time.Sleep(cutAfter)
	old := c.WaitLeader(10 * time.Second)
	c.Disconnect(old)
	cut := now()
	t.Logf("%.1fs: leader %s cut off", time.Since(start).Seconds(), c.Servers[old].ID)
	time.Sleep(cutFor)
	healed := now()
	c.Connect(old)
	t.Logf("%.1fs: partition healed", time.Since(start).Seconds())
	wg.Wait()
	elapsed := time.Since(start)
	c.WaitLeader(30 * time.Second)
	c.WaitConverged(30 * time.Second)

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d ops in %v: %d completed, %d writes with unknown outcome, %d failed reads", ok+ambiguous+badRead, elapsed.Round(time.Millisecond), ok, ambiguous, badRead)
	// Nothing sent to the isolated server while it was cut off can succeed:
	// it can neither commit a write nor confirm its leadership for a read.
	for _, op := range history {
		if op.Metadata.(int) == old && op.Call > cut && op.Return < healed {
			t.Errorf("isolated server %s answered %s during the partition", c.Servers[old].ID, registerModel.DescribeOperation(op.Input, op.Output))
		}
	}
	if ok < nClients*opsPerCli/3 {
		t.Fatalf("only %d operations completed", ok)
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel, history, checkLimit)
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Fatalf("porcupine gave up after %v on %d operations", checkLimit, len(history))
	default:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("atoll-multihost-linearizability-%d.html", time.Now().UnixNano()))
		if err := porcupine.VisualizePath(registerModel, info, path); err != nil {
			t.Logf("writing visualization: %v", err)
		} else {
			t.Logf("visualization: %s", path)
		}
		t.Fatalf("history of %d operations is not linearizable", len(history))
	}
}
