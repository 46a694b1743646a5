package fsm_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/fsm"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Restoring an environment whose expiry has passed re-arms its TTL from
// the restore's time (an ephemeral environment stays ephemeral), and one
// with an expiry but no TTL duration has it cleared; the history names the
// action without a meaningless "version 0".
func TestRestoreExpiredEnvironment(t *testing.T) {
	s := newScript()
	withTTL, bare := api.NewID("env"), api.NewID("env")
	ttlEnv := s.env(withTTL, "ephemeral", 500)
	ttlEnv.GetCreateEnvironment().Environment.Ttl = "24h"
	ttlEnv.GetCreateEnvironment().Environment.ExpiresAt = timestamppb.New(t0.Add(24 * time.Hour))
	bareEnv := s.env(bare, "fixed-date", 500)
	bareEnv.GetCreateEnvironment().Environment.ExpiresAt = timestamppb.New(t0.Add(time.Hour))
	later := t0.Add(72 * time.Hour) // both have expired (and were deleted)
	at := func(c *atollv1.Command) *atollv1.Command { c.Time = timestamppb.New(later); return c }
	s.cmds = append(s.cmds, ttlEnv, bareEnv,
		cmd(s.org, &atollv1.DeleteEnvironmentCmd{EnvironmentId: withTTL}),
		cmd(s.org, &atollv1.DeleteEnvironmentCmd{EnvironmentId: bare}),
		at(cmd(s.org, &atollv1.RestoreEnvironmentCmd{EnvironmentId: withTTL})),
		at(cmd(s.org, &atollv1.RestoreEnvironmentCmd{EnvironmentId: bare})),
		at(cmd(s.org, &atollv1.RestoreEnvironmentCmd{EnvironmentId: withTTL, Version: 1})),
	)
	f := fsm.New(100, nil, nil)
	for i, r := range apply(t, f, 1, s.cmds) {
		if r.Err != nil {
			t.Fatalf("command %d refused: %v", i, r.Err)
		}
	}
	st, _ := f.State()
	tx := st.Snapshot()

	e := tx.Environment(withTTL)
	if e.IsDeleted || e.Ttl != "24h" || !e.GetExpiresAt().AsTime().Equal(later.Add(24*time.Hour)) {
		t.Fatalf("restored TTL environment: deleted %v ttl %q expires %v, want 24h from the restore (%v)", e.IsDeleted, e.Ttl, e.GetExpiresAt().AsTime(), later.Add(24*time.Hour))
	}
	e = tx.Environment(bare)
	if e.IsDeleted || e.ExpiresAt != nil || e.Ttl != "" {
		t.Fatalf("restored environment without a TTL duration: deleted %v ttl %q expires %v, want no expiry", e.IsDeleted, e.Ttl, e.ExpiresAt)
	}
	var actions []string
	for _, v := range tx.EnvironmentVersions(withTTL) {
		actions = append(actions, v.Action)
	}
	if n := len(actions); n < 2 || actions[n-2] != "restore" || actions[n-1] != "restore version 1" {
		t.Fatalf("history actions %q, want ... restore, restore version 1", actions)
	}
}
