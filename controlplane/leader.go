package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/fsm"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// monitorLeadership starts the leader-only loops when this server becomes
// leader and cancels them when it stops being leader.
func (s *Server) monitorLeadership() {
	var cancel context.CancelFunc
	stop := func() {
		if cancel != nil {
			cancel()
			cancel = nil
		}
		s.leaderReady.Store(false)
		s.dropLease()
	}
	defer stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case leader := <-s.notifyCh:
			s.metrics.LeaderChanges.Inc()
			stop()
			if !leader {
				s.log.Info("lost leadership")
				continue
			}
			ctx, leaderCancel := context.WithCancel(s.ctx)
			cancel = leaderCancel
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.leaderLoop(ctx)
			}()
		}
	}
}

func (s *Server) leaderLoop(ctx context.Context) {
	s.log.Info("gained leadership; catching up")
	// Apply everything committed in earlier terms before serving reads.
	for ctx.Err() == nil {
		if err := s.awaitFuture(ctx, s.raft.Barrier(s.cfg.ApplyTimeout)); err == nil {
			break
		} else {
			s.log.Warn("barrier failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	s.leaderReady.Store(true)
	s.establish(ctx)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.schedulerLoop(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.dispatcher.healthLoop(ctx)
	}()
	s.reapLoop(ctx)
}

// establish records this server's addresses and bootstraps the first organization.
func (s *Server) establish(ctx context.Context) {
	st, _ := s.fsm.State()
	tx := st.Snapshot()
	if m := tx.Server(s.id); m == nil || !proto.Equal(m, s.member()) {
		if _, err := s.applySystem(&atollv1.Command{Cmd: &atollv1.Command_UpsertServer{UpsertServer: &atollv1.UpsertServerCmd{Server: s.member()}}}); err != nil {
			s.log.Error("record server address", "err", err)
		}
	}
	if !s.cfg.Bootstrap || len(tx.Organizations()) > 0 {
		return
	}
	c, secret := api.NewOrganization(s.cfg.OrgName, nil, []string{"*"})
	cmd := &atollv1.Command{OrgId: c.Organization.Id, Cmd: &atollv1.Command_CreateOrganization{CreateOrganization: c}}
	if _, err := s.applySystem(cmd); err != nil {
		s.log.Error("bootstrap organization", "err", err)
		return
	}
	path := filepath.Join(s.cfg.DataDir, "admin.token")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		s.log.Error("write admin token", "path", path, "err", err)
	}
	if s.cfg.OnAdminToken != nil {
		s.cfg.OnAdminToken(secret)
	} else {
		fmt.Fprintf(s.cfg.LogOutput, "\nadmin token (shown once, also saved to %s):\n  %s\n\n", path, secret)
	}
	s.log.Info("bootstrapped organization", "org", c.Organization.Id, "token_file", path)
}

// reapLoop deletes environments whose TTL has passed, and purges those
// soft-deleted for longer than the retention (Config.DeletedRetention). Each
// is one proposed command that the state machine re-checks when it applies
// it, so a proposal made from a stale view is harmless.
func (s *Server) reapLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		st, _ := s.fsm.State()
		tx := st.Snapshot()
		var expired, warn, purge []string
		for _, org := range tx.Organizations() {
			for _, e := range tx.Environments(org.Id) {
				if e.IsDeleted {
					if s.cfg.DeletedRetention > 0 && len(purge) < PurgeBatch && !fsm.DeletedAt(e).After(now.Add(-s.cfg.DeletedRetention)) {
						purge = append(purge, e.Id)
					}
					continue
				}
				if e.ExpiresAt == nil {
					continue
				}
				switch at := e.ExpiresAt.AsTime(); {
				case !at.After(now):
					expired = append(expired, e.Id)
				case at.Sub(now) <= s.cfg.ExpiryWarning && !proto.Equal(e.ExpiryWarnedFor, e.ExpiresAt):
					warn = append(warn, e.Id)
				}
			}
		}
		if len(expired) > 0 || len(warn) > 0 {
			cmd := &atollv1.Command{Actor: "system:ttl", Cmd: &atollv1.Command_ExpireEnvironments{ExpireEnvironments: &atollv1.ExpireEnvironmentsCmd{EnvironmentIds: expired, WarnIds: warn}}}
			if _, err := s.applySystem(cmd); err != nil {
				s.log.Warn("expire environments", "err", err)
			} else {
				s.log.Info("environment TTLs", "expired", len(expired), "warned", len(warn))
			}
		}
		if len(purge) > 0 {
			cmd := &atollv1.Command{Actor: "system:retention", Cmd: &atollv1.Command_PurgeDeletedEnvironments{PurgeDeletedEnvironments: &atollv1.PurgeDeletedEnvironmentsCmd{
				EnvironmentIds: purge, DeletedBefore: timestamppb.New(now.Add(-s.cfg.DeletedRetention)),
			}}}
			if _, err := s.applySystem(cmd); err != nil {
				s.log.Warn("purge deleted environments", "err", err)
			} else {
				s.log.Info("purged environments deleted longer than the retention", "count", len(purge), "retention", s.cfg.DeletedRetention)
			}
		}
	}
}

// PurgeBatch bounds how many soft-deleted environments the leader purges in
// one command (one reap tick); more wait for the next ticks.
const PurgeBatch = 100

// joinLoop asks the cluster to add this server until it is a member.
func (s *Server) joinLoop() {
	backoff := 100 * time.Millisecond
	for {
		for _, addr := range s.cfg.Join {
			if err := s.joinVia(addr); err != nil {
				if permanentJoinError(err) {
					s.fail(joinRefused(addr, err))
					return
				}
				s.log.Warn("join failed; will retry", "via", addr, "err", err)
				continue
			}
			s.log.Info("joined cluster", "via", addr)
			return
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Server) joinVia(addr string) error {
	c, err := s.conn(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	ctx = withToken(ctx, s.cfg.JoinToken)
	resp, err := atollv1.NewOperatorServiceClient(c).JoinServer(ctx, &atollv1.JoinServerRequest{Server: s.member()})
	if err != nil {
		return err
	}
	if len(resp.Keyring) > 0 {
		return s.keyring.Install(resp.Keyring)
	}
	return nil
}

// Join implements api.Operator on the leader: add the server as a voter and record its addresses.
func (s *Server) Join(ctx context.Context, m *atollv1.ServerMember) error {
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	present := false
	for _, srv := range cf.Configuration().Servers {
		switch {
		case srv.ID == raft.ServerID(m.Id) && srv.Address == raft.ServerAddress(m.RaftAddress):
			present = true
		case srv.ID == raft.ServerID(m.Id) || srv.Address == raft.ServerAddress(m.RaftAddress):
			if err := s.raft.RemoveServer(srv.ID, 0, s.cfg.ApplyTimeout).Error(); err != nil {
				return fmt.Errorf("remove stale peer %s: %w", srv.ID, err)
			}
		}
	}
	if !present {
		if err := s.raft.AddVoter(raft.ServerID(m.Id), raft.ServerAddress(m.RaftAddress), 0, s.cfg.ApplyTimeout).Error(); err != nil {
			return fmt.Errorf("add voter %s: %w", m.Id, err)
		}
	}
	_, err := s.applySystem(&atollv1.Command{Cmd: &atollv1.Command_UpsertServer{UpsertServer: &atollv1.UpsertServerCmd{Server: m}}})
	return err
}
