package controlplane_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// The leader warns once before an environment's TTL ends (an "expiring"
// event on the watch stream), then soft-deletes it when the TTL has passed.
func TestTTLWarnsThenExpires(t *testing.T) {
	c := cptest.NewCluster(t, 1, func(_ int, cfg *controlplane.Config) {
		cfg.ReapInterval, cfg.ExpiryWarning = 20*time.Millisecond, time.Hour
	})
	s := c.Servers[0]
	ctx := cptest.Ctx(t, c.AdminToken)
	envs := cptest.Envs(t, s)
	e, err := envs.CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "short", Ttl: "30m"})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := envs.WatchEnvironment(wctx, &atollv1.WatchEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.EventType == "expiring" {
			if !ev.Environment.ExpiryWarnedFor.AsTime().Equal(e.ExpiresAt.AsTime()) {
				t.Fatalf("warned for %v, expires %v", ev.Environment.ExpiryWarnedFor, e.ExpiresAt)
			}
			break
		}
	}
	// Expiry: an environment whose expiresAt has passed (written directly:
	// the API refuses TTLs under a minute) is soft-deleted by the reaper.
	st, _ := s.State()
	org := st.Snapshot().Organizations()[0]
	var project string
	for _, p := range st.Snapshot().Projects(org.Id) {
		project = p.Id
	}
	id := api.NewID("env")
	res, err := s.Apply(ctx, &atollv1.Command{Time: timestamppb.Now(), Actor: "test", OrgId: org.Id,
		Cmd: &atollv1.Command_CreateEnvironment{CreateEnvironment: &atollv1.CreateEnvironmentCmd{Environment: &atollv1.Environment{
			Id: id, Name: "gone", Slug: "gone", OrgId: org.Id, ProjectId: project,
			ResourceQuota: &atollv1.Resources{Cpu: 100, Memory: 100, Storage: 100},
			ExpiresAt:     timestamppb.New(time.Now().Add(-time.Second)), Ttl: "1s",
		}}}})
	if err != nil || res.Err != nil {
		t.Fatalf("create: %v %v", err, res.Err)
	}
	cptest.WaitFor(t, 10*time.Second, "expired environment deleted", func() bool {
		st, _ := s.State()
		e := st.Snapshot().Environment(id)
		return e != nil && e.IsDeleted
	})
	h, err := envs.GetEnvironmentHistory(ctx, &atollv1.GetEnvironmentHistoryRequest{EnvironmentId: id})
	if err != nil {
		t.Fatal(err)
	}
	last := h.Versions[len(h.Versions)-1]
	if last.Action != "expire" || last.ModifiedBy != "system:ttl" {
		t.Fatalf("last version: %s by %s", last.Action, last.ModifiedBy)
	}
}
