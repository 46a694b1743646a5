package fsm_test

// The state machine's cost per CreateEnvironment (each server applies every
// command, so this is paid three times per create in a 3-server cluster):
//
//	go test ./controlplane/fsm -run '^$' -bench ApplyCreate -benchmem

import (
	"fmt"
	"math"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/fsm"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// BenchmarkApplyCreate applies CreateEnvironment commands to a state that
// already holds 10,000 environments, in batches of 1 (one client: every
// entry commits alone) and 64 (many clients: raft hands the FSM batches).
func BenchmarkApplyCreate(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := newScript()
			s.cmds[0].GetCreateOrganization().Organization.Quota = &atollv1.Resources{Cpu: math.MaxInt32, Memory: math.MaxInt32, Storage: math.MaxInt32}
			f := fsm.New(0, nil, nil)
			index := uint64(1)
			mk := func(n int) []*raft.Log {
				logs := make([]*raft.Log, n)
				for i := range logs {
					c := s.env(api.NewID("env"), fmt.Sprintf("bench-env-%d", index), 1)
					if index == 1 {
						c = s.cmds[0]
					}
					data, err := proto.Marshal(c)
					if err != nil {
						b.Fatal(err)
					}
					logs[i] = &raft.Log{Index: index, Type: raft.LogCommand, Data: data}
					index++
				}
				return logs
			}
			check := func(out []any) {
				for _, r := range out {
					if err := r.(*fsm.Result).Err; err != nil {
						b.Fatal(err)
					}
				}
			}
			for range 10000 / 100 {
				check(f.ApplyBatch(mk(100)))
			}
			work := make([][]*raft.Log, (b.N+batch-1)/batch)
			for i := range work {
				work[i] = mk(batch)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, logs := range work {
				check(f.ApplyBatch(logs))
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(len(work)*batch), "ns/create")
		})
	}
}
