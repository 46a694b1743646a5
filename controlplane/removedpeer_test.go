package controlplane_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func inConfig(s *controlplane.Server) bool {
	f := s.Raft().GetConfiguration()
	if f.Error() != nil {
		return true
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == raft.ServerID(s.ID()) {
			return true
		}
	}
	return false
}

// A server removed from the raft configuration (and still running) says so
// at once instead of waiting for a leader that never comes.
func TestRemovedServerSaysSoPromptly(t *testing.T) {
	c := cptest.NewCluster(t, 3)
	ctx := cptest.Ctx(t, c.AdminToken)
	l := c.WaitLeader()
	gone := c.Followers()[0]
	if _, err := cptest.Ops(t, l).RemoveRaftPeer(ctx, &atollv1.RemoveRaftPeerRequest{Id: gone.ID()}); err != nil {
		t.Fatalf("remove peer: %v", err)
	}
	cptest.WaitFor(t, 20*time.Second, "the removed server to learn its removal and lose the leader", func() bool {
		_, leader := gone.Raft().LeaderWithID()
		return !inConfig(gone) && leader == ""
	})

	// The membership message (not "no raft leader", which comes after the
	// wait for a leader) shows it answered without waiting.
	_, err := cptest.Envs(t, gone).ListEnvironments(ctx, &atollv1.ListEnvironmentsRequest{})
	wantCode(t, err, codes.Unavailable, gone.ID(), "not in the cluster's raft configuration", "--join", "data dir")
	_, err = cptest.Envs(t, gone).CreateEnvironment(ctx, smallEnv("on-removed"))
	wantCode(t, err, codes.Unavailable, "not in the cluster's raft configuration")

	// REST: 503 with the same reason.
	req, _ := http.NewRequest(http.MethodGet, "http://"+gone.HTTPAddr()+"/v1/environments", nil)
	req.Header.Set("Authorization", "Bearer "+c.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not in the cluster") {
		t.Fatalf("REST on the removed server: %d %s", resp.StatusCode, body)
	}

	// The rest of the cluster serves.
	if _, err := cptest.Envs(t, l).CreateEnvironment(ctx, smallEnv("after-remove")); err != nil {
		t.Fatalf("create on the remaining cluster: %v", err)
	}

	// Health: the removed server turns NOT_SERVING (gRPC health, /readyz 503
	// with the reason); the leader stays SERVING (/readyz 200).
	cptest.WaitFor(t, 10*time.Second, "the removed server's gRPC health to be NOT_SERVING", func() bool {
		r, err := healthpb.NewHealthClient(cptest.Conn(t, gone)).Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err == nil && r.Status == healthpb.HealthCheckResponse_NOT_SERVING
	})
	cptest.WaitFor(t, 10*time.Second, "the leader's gRPC health to be SERVING", func() bool {
		r, err := healthpb.NewHealthClient(cptest.Conn(t, l)).Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err == nil && r.Status == healthpb.HealthCheckResponse_SERVING
	})
	if code, body := readyz(t, gone); code != http.StatusServiceUnavailable || !strings.Contains(body, `"ready":false`) || !strings.Contains(body, "not in the cluster's raft configuration") {
		t.Fatalf("/readyz on the removed server: %d %s", code, body)
	}
	if code, body := readyz(t, l); code != http.StatusOK || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("/readyz on the leader: %d %s", code, body)
	}
}

// readyz GETs a server's /readyz (no token: load balancers probe it).
func readyz(t *testing.T, s *controlplane.Server) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A server whose join the cluster refuses (a token without cluster:admin,
// an unknown token) gives up at once and says why; it does not retry forever.
func TestJoinRefusedIsFinal(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	ctx := cptest.Ctx(t, c.AdminToken)
	weak, err := atollv1.NewTokenServiceClient(cptest.Conn(t, c.Servers[0])).CreateToken(ctx, &atollv1.CreateTokenRequest{Name: "weak", Scopes: []string{"env:read"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		token string
		want  []string
	}{
		{weak.Secret, []string{"PermissionDenied", "cluster:admin", "--token"}},
		{"atl_not-a-real-token", []string{"Unauthenticated", "unknown or revoked", "--token"}},
	} {
		cfg := cptest.Config(t, 1)
		cfg.Join, cfg.JoinToken = []string{c.Servers[0].GRPCAddr()}, tc.token
		s, err := controlplane.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-s.Failed():
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("join refusal %q does not mention %q", err, w)
				}
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("a join with token %q was not given up within 15s", tc.token[:8])
		}
		// It asked once, not in a loop: the cluster is unchanged.
		if n := len(c.Servers[0].Raft().GetConfiguration().Configuration().Servers); n != 1 {
			t.Fatalf("the cluster has %d servers", n)
		}
		s.Close()
	}
}
