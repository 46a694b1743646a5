package controlplane_test

import (
	"testing"
	"time"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// A plain delete of a running environment (no force), as the seeds' DELETE
// does: its apps are stopped and it is soft-deleted; restore brings it back.
func TestDeleteRunningEnvironment(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	s := c.Servers[0]
	conn := cptest.Conn(t, s)
	ctx := cptest.Ctx(t, c.AdminToken)
	envs := atollv1.NewEnvironmentServiceClient(conn)
	env, err := envs.CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	miniAgent(t, ctx, atollv1.NewAgentServiceClient(conn), c.AdminToken, "host-1")
	apps := atollv1.NewAppServiceClient(conn)
	if _, err := apps.CreateApp(ctx, &atollv1.CreateAppRequest{EnvId: env.Id, App: &atollv1.App{
		Name: "web", Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: "latest"}},
		ResourceRequests: &atollv1.ResourceRequests{Cpu: "100m", Memory: "128Mi"}, Replicas: 2,
	}}); err != nil {
		t.Fatal(err)
	}
	cptest.WaitFor(t, 10*time.Second, "app running", func() bool {
		a, err := apps.GetApp(ctx, &atollv1.GetAppRequest{EnvId: env.Id, AppId: "web"})
		return err == nil && a.Status.Running == 2
	})
	if _, err := envs.DeleteEnvironment(ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: env.Id}); err != nil {
		t.Fatalf("delete a running environment without force: %v", err)
	}
	d, err := envs.GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: env.Id})
	if err != nil {
		t.Fatal(err)
	}
	if !d.IsDeleted || d.Status != atollv1.EnvironmentStatus_STOPPED {
		t.Fatalf("after delete: deleted=%v status=%v", d.IsDeleted, d.Status)
	}
	st, _ := s.State()
	for _, in := range st.Snapshot().EnvInstances(env.Id) {
		if in.GetDesiredRunning() {
			t.Fatalf("instance %s still desired running after delete", in.Id)
		}
	}
	r, err := envs.RestoreEnvironment(ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: env.Id})
	if err != nil || r.IsDeleted {
		t.Fatalf("restore: %v %v", r, err)
	}
}
