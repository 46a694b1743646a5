package controlplane_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// A volume's data lives on one node: every replica that mounts it goes
// there, and when that node is lost the app waits for it (with the reason)
// instead of starting elsewhere on an empty volume.
func TestVolumePinsInstancesToItsNode(t *testing.T) {
	f := newSchedFixture(t, 1, nil)
	a1 := f.agent("host-a", 4000, 8192)
	a2 := f.agent("host-b", 4000, 8192)
	vol, err := atollv1.NewVolumeServiceClient(cptestConn(t, f)).CreateVolume(f.ctx, &atollv1.CreateVolumeRequest{EnvId: f.env.Id, Volume: &atollv1.Volume{Name: "data", SizeMb: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.apps.CreateApp(f.ctx, &atollv1.CreateAppRequest{EnvId: f.env.Id, App: &atollv1.App{
		Name: "db", Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "pg", Tag: "16"}},
		ResourceRequests: &atollv1.ResourceRequests{Cpu: "100m", Memory: "64Mi"}, Replicas: 3,
		VolumeMounts: []*atollv1.VolumeMount{{VolNameRef: "data", Path: "/data"}},
	}}); err != nil {
		t.Fatal(err)
	}
	var pinned string
	f.c.WaitState(schedWait, "3 replicas on the volume's node", func(tx *state.Txn) bool {
		v := tx.Volume(vol.Id)
		if v == nil || v.NodeId == "" {
			return false
		}
		pinned = v.NodeId
		n := 0
		for _, in := range tx.EnvInstances(f.env.Id) {
			if in.NodeId != v.NodeId {
				return false
			}
			n++
		}
		return n == 3
	})
	lost := a1
	if a2.NodeID() == pinned {
		lost = a2
	}
	lost.PauseHeartbeats()
	f.c.WaitState(schedWait, "app waits for the volume's node, with the reason", func(tx *state.Txn) bool {
		app := tx.LiveAppByName(f.env.Id, "db")
		for _, in := range tx.EnvInstances(f.env.Id) {
			if in.NodeId != pinned {
				return false // started elsewhere: data would be lost
			}
		}
		return app != nil && strings.Contains(app.GetStatus().GetMessage(), "volume data on node "+pinned)
	})
	lost.Resume()
	f.c.WaitState(schedWait, "back on its node", func(tx *state.Txn) bool {
		n := 0
		for _, in := range tx.EnvInstances(f.env.Id) {
			if in.NodeId == pinned && in.State == atollv1.InstanceState_INSTANCE_RUNNING {
				n++
			}
		}
		return n == 3
	})
}

func cptestConn(t *testing.T, f *schedFixture) *grpc.ClientConn {
	return cptest.Conn(t, f.c.WaitLeader())
}
