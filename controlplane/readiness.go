package controlplane

import (
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// readinessInterval is how often the server re-evaluates its readiness.
const readinessInterval = time.Second

// Readiness says whether this server can serve API requests now: it is in
// the cluster's raft configuration and knows a leader to apply writes and
// confirm reads through. Reason explains a server that is not ready and
// what to do.
func (s *Server) Readiness() (ready bool, reason string) {
	if err := s.membershipProblem(); err != nil {
		return false, status.Convert(err).Message()
	}
	if addr, id := s.raft.LeaderWithID(); addr == "" && id == "" {
		return false, "no raft leader: the cluster has no quorum (check `atoll operator raft list-peers` and that a majority of servers is up)"
	}
	return true, ""
}

// readinessLoop publishes Readiness as the gRPC health status of the
// server ("" service): SERVING or NOT_SERVING, so that load balancers and
// clients with several server addresses leave a removed or leaderless
// server alone. A change is logged once.
func (s *Server) readinessLoop() {
	t := time.NewTicker(readinessInterval)
	defer t.Stop()
	// Leader changes re-evaluate at once; the ticker catches the rest
	// (a configuration change that removes this server).
	changed := make(chan raft.Observation, 1)
	obs := raft.NewObserver(changed, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(obs)
	defer s.raft.DeregisterObserver(obs)
	last := grpc_health_v1.HealthCheckResponse_UNKNOWN
	for {
		ready, reason := s.Readiness()
		st := grpc_health_v1.HealthCheckResponse_SERVING
		if !ready {
			st = grpc_health_v1.HealthCheckResponse_NOT_SERVING
		}
		if st != last {
			s.health.SetServingStatus("", st)
			switch {
			case ready:
				s.log.Info("server ready")
			case last == grpc_health_v1.HealthCheckResponse_UNKNOWN:
				s.log.Debug("server not ready yet", "reason", reason) // starting: usually no leader yet
			default:
				s.log.Warn("server not ready", "reason", reason)
			}
			last = st
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
	}
}
