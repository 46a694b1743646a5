package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// LeaderHeader is the header or trailer a follower sets to the leader's
// gRPC address when it refuses a session.
const LeaderHeader = "x-atoll-leader"

// sessionError is why a session ended, with the leader hint if any.
type sessionError struct {
	err         error
	leader      string
	established bool // SessionInfo was received
}

func (e *sessionError) Error() string { return e.err.Error() }
func (e *sessionError) Unwrap() error { return e.err }

// sessionLoop keeps one session open, moving to the leader named by a
// follower, else to the next server, with exponential backoff and jitter.
func (a *Agent) sessionLoop(ctx context.Context) {
	bo := newBackoff(a.cfg.BackoffMin, a.cfg.BackoffMax)
	next := 0
	hint := ""
	failures := 0
	for ctx.Err() == nil {
		target := a.cfg.Servers[next%len(a.cfg.Servers)]
		if hint != "" {
			target, hint = hint, ""
		}
		err := a.session(ctx, target)
		if ctx.Err() != nil {
			return
		}
		a.m.reconnects.Inc()
		failures++
		var se *sessionError
		if errors.As(err, &se) {
			if se.established {
				bo.reset()
				failures = 1
			}
			if se.leader != "" && se.leader != target {
				hint = se.leader
			}
		}
		if hint == "" {
			next++
		}
		d := bo.next()
		if hint != "" {
			d = a.cfg.BackoffMin // a named leader is worth trying at once
		}
		logf := a.log.Debug
		if failures == 1 || failures%20 == 0 {
			logf = a.log.Warn // not every attempt while the control plane is away
		}
		logf("session with control plane ended; reconnecting", "attempt", failures, "server", target, "err", err, "leader_hint", hint, "retry_in", d.Round(time.Millisecond))
		if !sleepCtx(ctx, d) {
			return
		}
	}
}

// session runs one session with the server at addr until it fails.
func (a *Agent) session(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(a.dialCreds),
		// Notice a dead server (or path) within ~15 s, not at the next write.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}))
	if err != nil {
		return &sessionError{err: fmt.Errorf("dial %s: %w", addr, err)}
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+a.cfg.JoinToken)

	// Registration is bounded: the stream must open and SessionInfo arrive
	// within RPCTimeout.
	regTimer := time.AfterFunc(a.cfg.RPCTimeout, cancel)
	stream, err := atollv1.NewAgentServiceClient(conn).Session(sctx)
	if err != nil {
		regTimer.Stop()
		return &sessionError{err: fmt.Errorf("open session on %s: %w", addr, err)}
	}
	fail := func(err error, established bool) error {
		se := &sessionError{err: err, established: established}
		if ctx.Err() == nil || established {
			se.leader = leaderHint(stream)
		}
		if s, ok := status.FromError(err); ok {
			switch s.Code() {
			case codes.Unavailable, codes.FailedPrecondition:
				if se.leader != "" {
					se.err = fmt.Errorf("%w (leader is %s): %w", ErrNotLeader, se.leader, err)
				}
			case codes.Unauthenticated, codes.PermissionDenied:
				se.err = fmt.Errorf("%w: %w", ErrSessionRejected, err)
			}
		}
		return se
	}
	if err := stream.Send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Register{Register: a.registration()}}); err != nil {
		regTimer.Stop()
		_, rerr := stream.Recv() // the real error is on the receive side
		if rerr == nil {
			rerr = err
		}
		return fail(fmt.Errorf("register on %s: %w", addr, rerr), false)
	}
	first, err := stream.Recv()
	if !regTimer.Stop() && err != nil {
		return fail(fmt.Errorf("register on %s: no answer within %v: %w", addr, a.cfg.RPCTimeout, err), false)
	}
	if err != nil {
		return fail(fmt.Errorf("register on %s: %w", addr, err), false)
	}
	info := first.GetSession()
	if info == nil {
		return &sessionError{err: fmt.Errorf("register on %s: first message is %T, want SessionInfo", addr, first.GetMsg())}
	}
	if err := a.saveNodeID(info.NodeId); err != nil {
		return &sessionError{err: err}
	}
	secret := info.AgentSecret
	a.secret.Store(&secret)
	if info.HeartbeatPeriodMs > 0 {
		a.heartbeat.Store(int64(time.Duration(info.HeartbeatPeriodMs) * time.Millisecond))
	}
	if info.UsagePeriodMs > 0 {
		a.usagePeriod.Store(int64(time.Duration(info.UsagePeriodMs) * time.Millisecond))
		select {
		case a.usageKick <- struct{}{}:
		default:
		}
	}
	a.log.Info("session established", "server", addr, "node_id", info.NodeId, "heartbeat", time.Duration(a.heartbeat.Load()), "domain", info.Domain)

	sendErr := make(chan error, 1)
	go func() {
		err := a.sendLoop(ctx, stream)
		if err != nil {
			cancel() // unblocks Recv
		}
		sendErr <- err
	}()
	for {
		msg, err := stream.Recv()
		if err != nil {
			cancel()
			if serr := <-sendErr; serr != nil && ctx.Err() == nil {
				err = serr
			}
			return fail(fmt.Errorf("session on %s: %w", addr, err), true)
		}
		if as := msg.GetAssignments(); as != nil {
			a.applyAssignments(as)
		}
		select {
		case err := <-sendErr:
			cancel()
			return fail(fmt.Errorf("session on %s: send: %w", addr, err), true)
		default:
		}
	}
}

// sendLoop is the session's only sender after registration: all current
// statuses first, then heartbeats, batched status changes and usage.
func (a *Agent) sendLoop(ctx context.Context, stream grpc.BidiStreamingClient[atollv1.AgentMessage, atollv1.ServerMessage]) error {
	send := func(m *atollv1.AgentMessage) error {
		if err := stream.Send(m); err != nil {
			return err
		}
		return nil
	}
	if all := a.takeStatuses(true); len(all) > 0 {
		if err := send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Status{Status: &atollv1.StatusReport{Instances: all}}}); err != nil {
			return err
		}
	}
	period := time.Duration(a.heartbeat.Load())
	hb := time.NewTicker(period)
	defer hb.Stop()
	var batch <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hb.C:
			if err := send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Heartbeat{Heartbeat: &atollv1.Heartbeat{}}}); err != nil {
				return err
			}
		case <-a.statusKick:
			if batch == nil {
				batch = time.After(a.cfg.StatusBatch)
			}
		case <-batch:
			batch = nil
			if ch := a.takeStatuses(false); len(ch) > 0 {
				if err := send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Status{Status: &atollv1.StatusReport{Instances: ch}}}); err != nil {
					return err
				}
			}
		case <-a.usageReady:
			a.usageMu.Lock()
			u := a.usage
			a.usage = nil
			a.usageMu.Unlock()
			if u != nil {
				if err := send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Usage{Usage: u}}); err != nil {
					return err
				}
			}
		}
	}
}

func (a *Agent) registration() *atollv1.RegisterNode {
	routerAddr := a.cfg.RouterAdvertise
	if routerAddr == "" {
		routerAddr = a.RouterAddr()
	}
	agentAddr := a.cfg.ListenAdvertise
	if agentAddr == "" {
		agentAddr = a.AgentAddr()
	}
	return &atollv1.RegisterNode{
		NodeId:        a.NodeID(),
		Name:          a.cfg.Name,
		Capacity:      a.capacity,
		Allocatable:   a.allocatable,
		Labels:        a.cfg.Labels,
		RouterAddress: routerAddr,
		AgentVersion:  a.cfg.Version,
		Address:       a.cfg.Address,
		AgentAddress:  agentAddr,
	}
}

// leaderHint reads x-atoll-leader from the header or trailer of a failed
// stream.
func leaderHint(stream grpc.ClientStream) string {
	if md, err := stream.Header(); err == nil {
		if v := md.Get(LeaderHeader); len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	if v := stream.Trailer().Get(LeaderHeader); len(v) > 0 {
		return v[0]
	}
	return ""
}
