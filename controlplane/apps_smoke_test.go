package controlplane_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// miniAgent registers over a real session and reports every assignment RUNNING.
func miniAgent(t *testing.T, ctx context.Context, client atollv1.AgentServiceClient, token, name string) (nodeID string, assignments <-chan *atollv1.Assignments) {
	t.Helper()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	stream, err := client.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := &atollv1.Resources{Cpu: 4000, Memory: 8192, Storage: 100000}
	if err := stream.Send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Register{Register: &atollv1.RegisterNode{
		Name: name, Capacity: res, Allocatable: res, Address: "127.0.0.1"}}}); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	nodeID = first.GetSession().GetNodeId()
	ch := make(chan *atollv1.Assignments, 100)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				close(ch)
				return
			}
			a := m.GetAssignments()
			if a == nil {
				continue
			}
			ch <- a
			var st []*atollv1.InstanceStatus
			for _, u := range a.Upsert {
				st = append(st, &atollv1.InstanceStatus{InstanceId: u.InstanceId, State: atollv1.InstanceState_INSTANCE_RUNNING, ContainerId: "c-" + u.InstanceId, Address: "127.0.0.1:9"})
			}
			if len(st) > 0 {
				_ = stream.Send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Status{Status: &atollv1.StatusReport{Instances: st}}})
			}
		}
	}()
	return nodeID, ch
}

func TestSmokeAppScheduledAndRunning(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	s := c.Servers[0]
	conn := cptest.Conn(t, s)
	ctx := cptest.Ctx(t, c.AdminToken)
	env, err := atollv1.NewEnvironmentServiceClient(conn).CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	nodeID, _ := miniAgent(t, ctx, atollv1.NewAgentServiceClient(conn), c.AdminToken, "host-1")
	apps := atollv1.NewAppServiceClient(conn)
	app, err := apps.CreateApp(ctx, &atollv1.CreateAppRequest{EnvId: env.Id, App: &atollv1.App{
		Name: "web", Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: "latest"}},
		ResourceRequests: &atollv1.ResourceRequests{Cpu: "100m", Memory: "128Mi"}, Replicas: 2,
		PublicEndpoint: &atollv1.PublicEndpoint{AppPort: 80},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if app.PublicEndpoint.Hostname != "web-demo.localhost" {
		t.Fatalf("hostname %q", app.PublicEndpoint.Hostname)
	}
	cptest.WaitFor(t, 10*time.Second, "app running", func() bool {
		a, err := apps.GetApp(ctx, &atollv1.GetAppRequest{EnvId: env.Id, AppId: "web"})
		return err == nil && a.Status.State == "RUNNING" && a.Status.Running == 2 && a.Status.Instances[0].NodeId == nodeID
	})
	cptest.WaitFor(t, 10*time.Second, "env running", func() bool {
		e, err := atollv1.NewEnvironmentServiceClient(conn).GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: env.Id})
		return err == nil && e.Status == atollv1.EnvironmentStatus_RUNNING && e.ResourceUsage.Cpu == 200
	})
}
