package controlplane

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/apierr"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

var _ api.AppLogsForwarder = (*dispatcher)(nil)

// leaderWatchPeriod is how often a relayed log stream checks that the
// server it reads from is still the leader (a leader that vanished without
// closing its connections would otherwise leave the stream silent).
var leaderWatchPeriod = 250 * time.Millisecond

// ForwardAppLogs implements api.AppLogsForwarder. The agents' log endpoints
// admit the bearer secret of their session with the leader only, so a
// follower relays the whole GetAppLogs call to the leader; the stream ends
// with UNAVAILABLE (LOG_STREAM_ENDED) naming the leader when that relay
// breaks or the leader changes, so the client knows to retry.
func (d *dispatcher) ForwardAppLogs(ctx context.Context, req *atollv1.GetAppLogsRequest, send func(*atollv1.LogLine) error) (bool, error) {
	s := d.s
	if s.IsLeader() {
		return false, nil
	}
	conn, leader, octx, err := s.forwardTarget(ctx, "/atoll.v1.AppService/GetAppLogs")
	if err != nil {
		return true, err
	}
	if conn == nil { // became leader meanwhile
		return false, nil
	}
	fctx, cancel := context.WithCancelCause(octx)
	defer cancel(nil)
	go func() {
		t := time.NewTicker(leaderWatchPeriod)
		defer t.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
			}
			if _, id := s.raft.LeaderWithID(); string(id) != leader {
				now := "no leader now"
				if id != "" {
					now = "the leader is now " + string(id)
				}
				cancel(fmt.Errorf("leader %s went away or stepped down (%s)", leader, now))
				return
			}
		}
	}()
	stream, err := atollv1.NewAppServiceClient(conn).GetAppLogs(fctx, req)
	if err == nil {
		err = pipe(stream.Recv, send)
	}
	if err == nil || ctx.Err() != nil {
		return true, err
	}
	if c := context.Cause(fctx); c != nil && fctx.Err() != nil {
		err = c
	} else if st, ok := status.FromError(err); ok && len(st.Details()) > 0 {
		return true, err // the leader's own answer (not found, a stream that ended, ...)
	}
	return true, relayEnded(leader, err)
}

// relayEnded is the error of a log stream relayed from the leader that broke.
func relayEnded(leader string, err error) error {
	reason := err.Error()
	if st, ok := status.FromError(err); ok {
		reason = st.Message()
	}
	st := status.Newf(codes.Unavailable, "logs relayed from leader %s ended: %s; retry", leader, reason)
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: api.LogStreamEnded, Domain: apierr.Domain,
		Metadata: map[string]string{"leader": leader}}); derr == nil {
		st = d
	}
	return st.Err()
}
