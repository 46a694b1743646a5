package controlplane_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// The public domain, port and scheme of a server make the URLs the API
// shows and the hostnames the agents route on.
func TestPublicEndpointConfigured(t *testing.T) {
	c := cptest.NewCluster(t, 1, func(_ int, cfg *controlplane.Config) {
		cfg.Domain, cfg.RouterPort, cfg.PublicScheme = "Apps.Example.Test.", 8443, "https"
	})
	s := c.Servers[0]
	conn := cptest.Conn(t, s)
	ctx := cptest.Ctx(t, c.AdminToken)
	if got := s.PublicURLPattern(); got != "https://<app>-<env>.apps.example.test:8443/" {
		t.Fatalf("PublicURLPattern = %q", got)
	}

	// An agent learns the domain its router routes on.
	stream, err := atollv1.NewAgentServiceClient(conn).Session(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	res := &atollv1.Resources{Cpu: 4000, Memory: 8192, Storage: 100000}
	if err := stream.Send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Register{Register: &atollv1.RegisterNode{
		Name: "h1", Capacity: res, Allocatable: res, Address: "127.0.0.1"}}}); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if d := first.GetSession().GetDomain(); d != "apps.example.test" {
		t.Fatalf("session domain %q, want apps.example.test", d)
	}
	hostnames := make(chan string, 100)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				close(hostnames)
				return
			}
			for _, u := range m.GetAssignments().GetUpsert() {
				hostnames <- u.Hostname
			}
		}
	}()

	env, err := atollv1.NewEnvironmentServiceClient(conn).CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	apps := atollv1.NewAppServiceClient(conn)
	if _, err := apps.CreateApp(ctx, &atollv1.CreateAppRequest{EnvId: env.Id, App: &atollv1.App{
		Name: "web", Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: "latest"}},
		ResourceRequests: &atollv1.ResourceRequests{Cpu: "100m", Memory: "128Mi"},
		PublicEndpoint:   &atollv1.PublicEndpoint{AppPort: 80},
	}}); err != nil {
		t.Fatal(err)
	}
	wantHost := "web-" + env.Slug + ".apps.example.test"
	wantURL := "https://" + wantHost + ":8443/"
	a, err := apps.GetApp(ctx, &atollv1.GetAppRequest{EnvId: env.Id, AppId: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if a.PublicEndpoint.Hostname != wantHost || a.PublicEndpoint.Url != wantURL {
		t.Fatalf("GetApp public endpoint %q %q, want %q %q", a.PublicEndpoint.Hostname, a.PublicEndpoint.Url, wantHost, wantURL)
	}
	e, err := atollv1.NewEnvironmentServiceClient(conn).GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: env.Id})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Endpoints) != 1 || e.Endpoints[0].Url != wantURL {
		t.Fatalf("environment endpoints %v, want one with %q", e.Endpoints, wantURL)
	}
	// Every answer carrying the environment shows them: list, update, watch.
	envs := atollv1.NewEnvironmentServiceClient(conn)
	l, err := envs.ListEnvironments(ctx, &atollv1.ListEnvironmentsRequest{Search: "demo"})
	if err != nil || len(l.Environments) != 1 || len(l.Environments[0].Endpoints) != 1 || l.Environments[0].Endpoints[0].Url != wantURL {
		t.Fatalf("listed environment endpoints: %v %v", l, err)
	}
	u, err := envs.UpdateEnvironment(ctx, &atollv1.UpdateEnvironmentRequest{EnvironmentId: env.Id, Environment: &atollv1.Environment{Description: "d"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}})
	if err != nil || len(u.Endpoints) != 1 || u.Endpoints[0].Url != wantURL {
		t.Fatalf("updated environment endpoints: %v %v", u, err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	w, err := envs.WatchEnvironment(wctx, &atollv1.WatchEnvironmentRequest{EnvironmentId: env.Id})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := w.Recv(); err != nil || len(ev.GetEnvironment().GetEndpoints()) != 1 || ev.Environment.Endpoints[0].Url != wantURL {
		t.Fatalf("watched environment endpoints: %v %v", ev, err)
	}
	wcancel()
	select {
	case h := <-hostnames:
		if h != wantHost {
			t.Fatalf("assignment hostname %q, want %q", h, wantHost)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no assignment within 20s")
	}
}

func TestPublicConfigValidated(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*controlplane.Config)
		want string
	}{
		{func(c *controlplane.Config) { c.Domain = "" }, "--public-domain: is required"},
		{func(c *controlplane.Config) { c.Domain = "https://apps.example.com" }, "without a scheme"},
		{func(c *controlplane.Config) { c.Domain = "apps.example.com:80" }, "without a port"},
		{func(c *controlplane.Config) { c.Domain = "apps_1.example.com" }, "not a DNS name"},
		{func(c *controlplane.Config) { c.RouterPort = 70000 }, "--public-port 70000"},
		{func(c *controlplane.Config) { c.PublicScheme = "ftp" }, `--public-scheme "ftp"`},
	} {
		cfg := controlplane.DefaultConfig()
		tc.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error mentioning %q, got %v", tc.want, err)
		}
	}
	if err := controlplane.DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
}
