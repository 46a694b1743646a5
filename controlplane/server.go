package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/keyring"
	"github.com/atollhq/atoll/controlplane/state"
	"github.com/atollhq/atoll/internal/tlsutil"
	"github.com/atollhq/atoll/metrics"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Server is one control-plane server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	id      string
	fsm     *fsm.FSM
	raft    *raft.Raft
	trans   *raft.NetworkTransport
	logs    *guardedStore
	metrics *metrics.ControlPlane

	grpcLis, httpLis net.Listener
	grpc             *grpc.Server
	http             *http.Server
	health           *health.Server

	dispatcher   *dispatcher
	keyring      *keyring.Keyring
	schedMetrics schedMetrics

	leaderReady atomic.Bool
	// replayTo is the last log index on disk then; replayed turns true once
	// the state has applied that far (or this server led and caught up),
	// see Replaying.
	replayTo uint64
	replayed atomic.Bool
	// Consistent reads (reads.go).
	epoch                 time.Time
	leaseUntil            atomic.Int64 // monoNow deadline of the read lease
	verifyMu              sync.Mutex
	verifyCur, verifyNext *verifyRound
	notifyCh              chan bool

	// TLS (nil: plaintext): certs holds the certificate and CA, reloaded
	// by ReloadTLS or a changed file; serverTLS (from it) serves gRPC and
	// HTTPS, the raft stream layer and dialCreds use certs too.
	certs     *tlsutil.Reloader
	serverTLS *tls.Config

	connMu sync.Mutex
	conns  map[string]*grpc.ClientConn

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	failed    chan error // Failed
}

// New creates a server, opens its raft log and binds its listeners. Call
// Start to serve.
func New(cfg Config) (*Server, error) {
	// Hostnames match case-insensitively: keep the domain in one form.
	cfg.Domain = strings.ToLower(strings.TrimSuffix(cfg.Domain, "."))
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config:\n%w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "raft", "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	log := newLogger(cfg.LogOutput, cfg.LogLevel)
	id, err := nodeID(cfg)
	if err != nil {
		return nil, err
	}
	reg := cfg.Registry
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, cfg.Gatherer = r, r
	}
	if cfg.Gatherer == nil {
		if g, ok := reg.(prometheus.Gatherer); ok {
			cfg.Gatherer = g
		}
	}
	s := &Server{cfg: cfg, log: log.With("server", id), id: id, conns: map[string]*grpc.ClientConn{}, notifyCh: make(chan bool, 16), epoch: time.Now(), failed: make(chan error, 1)}
	if cfg.TLSCert != "" {
		// Validate: TLSCA comes with TLSCert.
		if s.certs, err = tlsutil.NewReloader(tlsutil.ReloaderOptions{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CAFile: cfg.TLSCA, Logger: s.log}); err != nil {
			return nil, err
		}
		s.serverTLS = s.certs.ServerConfig()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.metrics = metrics.NewControlPlane(reg)
	s.schedMetrics = schedMetrics{m: metrics.NewScheduler(reg)}
	s.dispatcher = newDispatcher(s, metrics.NewUsage(reg))
	s.fsm = fsm.New(cfg.EventLimit, s.log, s.metrics)
	if s.keyring, err = keyring.Open(cfg.DataDir, cfg.Bootstrap); err != nil {
		s.cancel()
		return nil, err
	}
	if err := s.setupRaft(); err != nil {
		s.cancel()
		return nil, err
	}
	s.registerRaftMetrics(reg)
	if err := s.listen(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func newLogger(w interface{ Write([]byte) (int, error) }, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func nodeID(cfg Config) (string, error) {
	if cfg.NodeID != "" {
		return cfg.NodeID, nil
	}
	path := filepath.Join(cfg.DataDir, "node-id")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	id := api.NewID("srv")
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("persist node id: %w", err)
	}
	return id, nil
}

func (s *Server) setupRaft() error {
	cfg := s.cfg
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.id)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.MaxAppendEntries = 512
	rc.BatchApplyCh = true
	rc.NotifyCh = s.notifyCh
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: cfg.LogOutput, Level: hclog.LevelFromString(map[string]string{"debug": "debug", "info": "warn", "warn": "warn", "error": "error"}[cfg.LogLevel]),
		Exclude: func(level hclog.Level, msg string, args ...any) bool {
			// The election every server holds when it starts (no leader
			// known yet) is routine, not a warning; a lost leader is.
			return cfg.LogLevel != "debug" && level == hclog.Warn && msg == "heartbeat timeout reached, starting election" &&
				len(args) >= 2 && fmt.Sprint(args[1]) == ""
		}})

	dir := filepath.Join(cfg.DataDir, "raft")
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), BoltOptions: &bbolt.Options{Timeout: 3 * time.Second}})
	if errors.Is(err, bbolt.ErrTimeout) {
		return fmt.Errorf("raft log %s is locked: is another atoll using data dir %s? stop it, or use another --data-dir", dir, cfg.DataDir)
	}
	if err != nil {
		return fmt.Errorf("open raft log %s: %w", dir, err)
	}
	s.logs = &guardedStore{s: store}
	logs, err := raft.NewLogCache(1024, s.logs)
	if err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir), 3, rc.Logger)
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	lis, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("raft listen on %s: %w%s", cfg.RaftAddr, err, portHint(err, "--raft-addr"))
	}
	var adv net.Addr
	if cfg.RaftAdvertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", cfg.RaftAdvertise); err != nil {
			lis.Close()
			return fmt.Errorf("raft advertise address: %w", err)
		}
	} else if a := lis.Addr().(*net.TCPAddr); a.IP.IsUnspecified() {
		lis.Close()
		return fmt.Errorf("raft address %s is unspecified: set --raft-advertise to an address peers can reach", cfg.RaftAddr)
	}
	s.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: newStreamLayer(lis, adv, s.certs), MaxPool: 3, Timeout: 10 * time.Second, Logger: rc.Logger,
	})
	existing, err := raft.HasExistingState(logs, s.logs, snaps)
	if err != nil {
		return err
	}
	r, err := raft.NewRaft(rc, s.fsm, logs, s.logs, snaps, s.trans)
	if err != nil {
		s.trans.Close()
		return fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	s.replayTo = r.LastIndex()
	if cfg.Bootstrap && !existing {
		f := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: s.trans.LocalAddr()}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	return nil
}

func (s *Server) listen() error {
	var err error
	if s.grpcLis, err = net.Listen("tcp", s.cfg.GRPCAddr); err != nil {
		return fmt.Errorf("gRPC listen on %s: %w%s", s.cfg.GRPCAddr, err, portHint(err, "--grpc-addr"))
	}
	if s.httpLis, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("HTTP listen on %s: %w%s", s.cfg.HTTPAddr, err, portHint(err, "--http-addr"))
	}
	return nil
}

// portHint says what to do about a port in use.
func portHint(err error, flag string) string {
	if errors.Is(err, syscall.EADDRINUSE) {
		return " (is another atoll running? stop it, or pick another port with " + flag + ")"
	}
	return ""
}

// ID is this server's raft id.
func (s *Server) ID() string { return s.id }

// GRPCAddr is the bound gRPC address.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// PublicURLPattern shows where apps' public endpoints are reached:
// http://<app>-<env>.localhost:7080/.
func (s *Server) PublicURLPattern() string {
	return api.PublicURLPattern(s.cfg.PublicScheme, s.cfg.Domain, s.cfg.RouterPort)
}

// HTTPAddr is the bound HTTP address.
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

// RaftAddr is the raft address peers dial.
func (s *Server) RaftAddr() string { return string(s.trans.LocalAddr()) }

// Raft exposes the raft node (tests, operator tooling).
func (s *Server) Raft() *raft.Raft { return s.raft }

// LogFirstIndex is the first index still in this server's raft log (0 if
// empty); it grows as snapshots compact the log.
func (s *Server) LogFirstIndex() (uint64, error) { return s.logs.FirstIndex() }

// FSM exposes the state machine (tests).
func (s *Server) FSM() *fsm.FSM { return s.fsm }

// State implements api.Backend.
func (s *Server) State() (*state.Store, <-chan struct{}) { return s.fsm.State() }

func (s *Server) grpcAdvertise() string {
	if s.cfg.GRPCAdvertise != "" {
		return s.cfg.GRPCAdvertise
	}
	return loopbackIfUnspecified(s.GRPCAddr())
}

func loopbackIfUnspecified(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

func (s *Server) member() *atollv1.ServerMember {
	return &atollv1.ServerMember{Id: s.id, RaftAddress: s.RaftAddr(), GrpcAddress: s.grpcAdvertise(), HttpAddress: loopbackIfUnspecified(s.HTTPAddr())}
}

// Start serves the APIs and runs the background loops until Close.
func (s *Server) Start() error {
	services := api.NewServices(s, s, api.Options{MaxTTL: s.cfg.MaxTTL, Log: s.log, Domain: s.cfg.Domain, RouterPort: s.cfg.RouterPort, PublicScheme: s.cfg.PublicScheme,
		Usage: s.dispatcher, Logs: s.dispatcher, Health: s.dispatcher, Secrets: s.keyring})
	auth := &api.Authenticator{Lookup: s.lookupToken, Replaying: s.Replaying, Now: time.Now, OrgSlug: func(id string) string {
		st, _ := s.fsm.State()
		if o := st.Snapshot().Organization(id); o != nil {
			return o.Slug
		}
		return ""
	}}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(8 << 20),
		// Agents ping every 10 s so a dead session is noticed; allow it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.ChainUnaryInterceptor(s.recoverUnary, s.metricsUnary, s.forwardUnary, auth.UnaryInterceptor),
		grpc.ChainStreamInterceptor(s.recoverStream, s.metricsStream, auth.StreamInterceptor),
	}
	if s.serverTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.serverTLS)))
	}
	s.grpc = grpc.NewServer(opts...)
	services.Register(s.grpc)
	atollv1.RegisterAgentServiceServer(s.grpc, s.dispatcher)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)

	gw, err := api.NewGateway(s.ctx, s.grpcAdvertise(), s.dialCreds(), s.cfg.Gatherer, s.log, s.Readiness)
	if err != nil {
		return err
	}
	s.http = &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, TLSConfig: s.serverTLS}

	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(s.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("gRPC server stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		serve := s.http.Serve
		if s.serverTLS != nil {
			serve = func(l net.Listener) error { return s.http.ServeTLS(l, "", "") }
		}
		if err := serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("HTTP server stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.monitorLeadership()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.readinessLoop()
	}()
	if len(s.cfg.Join) > 0 && s.memberAtThisAddress() {
		// A restart of a member at the same address: it is in the
		// configuration it kept, so it needs no join (the others may still
		// be replaying their logs). A new address needs the join, which
		// updates it.
		s.log.Info("already a member of the cluster: not joining again", "join", strings.Join(s.cfg.Join, ","))
	} else if len(s.cfg.Join) > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.joinLoop()
		}()
	}
	s.log.Info("server started", "grpc", s.GRPCAddr(), "http", s.HTTPAddr(), "raft", s.RaftAddr(), "tls", s.serverTLS != nil)
	return nil
}

func (s *Server) lookupToken(hash string) *atollv1.Token {
	st, _ := s.fsm.State()
	return st.Snapshot().TokenByHash(hash)
}

// IsLeader reports whether this server leads and has caught up with its term.
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader && s.leaderReady.Load() }

// Apply implements api.Backend: the one way to write (raftApply).
func (s *Server) Apply(ctx context.Context, cmd *atollv1.Command) (*fsm.Result, error) {
	if s.raft.State() != raft.Leader {
		return nil, apierr.Unavailable("this server is not the leader; retry (the request is forwarded automatically unless it already was)")
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	start := time.Now()
	f := s.raft.Apply(data, timeout)
	if err := s.awaitFuture(ctx, f); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return nil, apierr.Unavailable("leadership changed while applying: %v; the write may or may not have been applied, re-read and retry", err)
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, apierr.Unavailable("the cluster is overloaded (raft apply timed out after %s); retry", timeout)
		case status.Code(err) != codes.Unknown:
			return nil, err // already an API error (awaitFuture)
		}
		return nil, apierr.Unavailable("raft apply failed: %v", err)
	}
	s.metrics.RaftApply.Observe(time.Since(start).Seconds())
	res, ok := f.Response().(*fsm.Result)
	if !ok {
		return nil, fmt.Errorf("unexpected apply response %T", f.Response())
	}
	return res, nil
}

// awaitFuture waits for a raft future (apply, barrier), or for ctx. raft's
// timeout only bounds enqueueing: a future still queued when raft shuts down
// is never answered, so waiting on it alone could block forever.
func (s *Server) awaitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return apierr.Unavailable("gave up waiting for the write to commit (%v); it may or may not have been applied: re-read and retry", ctx.Err())
	}
}

// applySystem applies a command on behalf of the server itself.
func (s *Server) applySystem(cmd *atollv1.Command) (*fsm.Result, error) {
	if cmd.Time == nil {
		cmd.Time = timestamppb.Now()
	}
	if cmd.Actor == "" {
		cmd.Actor = "system"
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ApplyTimeout)
	defer cancel()
	res, err := s.Apply(ctx, cmd)
	if err == nil && res.Err != nil {
		err = res.Err
	}
	return res, err
}

// Close stops serving and shuts raft down.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.cancel()
		if s.health != nil {
			s.health.Shutdown()
		}
		if s.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.http.Shutdown(ctx)
			cancel()
		} else if s.httpLis != nil {
			s.httpLis.Close()
		}
		if s.grpc != nil {
			stopped := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(2 * time.Second):
				s.grpc.Stop()
			}
		} else if s.grpcLis != nil {
			s.grpcLis.Close()
		}
		if s.raft != nil {
			err = s.raft.Shutdown().Error()
		}
		if s.trans != nil {
			s.trans.Close()
		}
		s.wg.Wait()
		s.connMu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.connMu.Unlock()
		if s.logs != nil {
			s.logs.Close()
		}
	})
	return err
}

// conn returns a cached client connection to another server.
func (s *Server) conn(addr string) (*grpc.ClientConn, error) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if c, ok := s.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(s.dialCreds()))
	if err != nil {
		return nil, err
	}
	s.conns[addr] = c
	return c, nil
}

// dialCreds are the credentials this server dials servers and agents with:
// TLS verified with TLSCA when set, else plaintext.
func (s *Server) dialCreds() credentials.TransportCredentials {
	if s.certs != nil {
		return s.certs.ClientCredentials("")
	}
	return insecure.NewCredentials()
}

// TLS reports whether this server serves TLS (gRPC, HTTPS, raft).
func (s *Server) TLS() bool { return s.serverTLS != nil }

// ReloadTLS re-reads the TLS certificate, key and CA files (atoll server
// calls it on SIGHUP; a changed file is also noticed by the next handshake
// after tlsutil.DefaultCheckInterval). New connections use them; a file
// that fails to load keeps the previous one, is logged and returned. Without
// TLS it does nothing.
func (s *Server) ReloadTLS() error {
	if s.certs == nil {
		return nil
	}
	return s.certs.Reload()
}

// leaderConn waits (bounded by ctx) for a known leader and returns a connection to it.
func (s *Server) leaderConn(ctx context.Context) (*grpc.ClientConn, string, error) {
	for {
		_, id := s.raft.LeaderWithID()
		if id == "" {
			// Waiting cannot help a server outside the cluster: say so now.
			if err := s.membershipProblem(); err != nil {
				return nil, "", err
			}
		}
		if id != "" {
			if id == raft.ServerID(s.id) {
				return nil, s.id, nil
			}
			st, _ := s.fsm.State()
			if m := st.Snapshot().Server(string(id)); m != nil {
				c, err := s.conn(m.GrpcAddress)
				return c, string(id), err
			}
		}
		select {
		case <-ctx.Done():
			if id == "" {
				return nil, "", apierr.Unavailable("no raft leader: the cluster has no quorum (check `atoll operator raft list-peers` and that a majority of servers is up)")
			}
			return nil, "", apierr.Unavailable("the address of leader %s is not known yet; retry", id)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// membershipProblem explains why this server cannot take part in the
// cluster (nil when it is in the raft configuration): it was removed from
// it, or it has not joined one yet.
func (s *Server) membershipProblem() error {
	_, in, n := s.ownEntry()
	if n < 0 || in {
		return nil
	}
	if n == 0 {
		if len(s.cfg.Join) > 0 {
			return apierr.Unavailable("server %s has not joined the cluster yet (joining via %s; its log says why if this lasts): retry shortly, or use another server",
				s.id, strings.Join(s.cfg.Join, ","))
		}
		return apierr.Unavailable("server %s is not part of a cluster: restart it with --bootstrap (a new cluster) or --join <gRPC address of a cluster server>", s.id)
	}
	return apierr.Unavailable("server %s is not in the cluster's raft configuration (removed with `atoll operator raft remove-peer`?) and cannot serve requests: use another server, or restart it with --join <gRPC address of a cluster server> after clearing its data dir %s",
		s.id, s.cfg.DataDir)
}

// Replaying reports whether the state is still being rebuilt from the raft
// log after a restart. It ends (for good) once the state has applied the
// last entry that was on disk at start, or this server leads and has caught
// up with its term, or it follows a known leader and has applied all that
// is committed (entries on disk that were never committed may be dropped
// by the leader, so the first condition alone could wait forever).
func (s *Server) Replaying() bool {
	if s.replayed.Load() {
		return false
	}
	applied := s.raft.AppliedIndex()
	followingCaughtUp := s.raft.State() == raft.Follower && s.raft.Leader() != "" && applied >= s.raft.CommitIndex()
	if applied >= s.replayTo || s.leaderReady.Load() || followingCaughtUp {
		s.replayed.Store(true)
		return false
	}
	return true
}

// memberAtThisAddress reports whether the raft configuration this server
// holds lists it with its current raft address.
func (s *Server) memberAtThisAddress() bool {
	srv, in, _ := s.ownEntry()
	return in && srv.Address == s.trans.LocalAddr()
}

// ownEntry is this server's entry in the raft configuration it holds,
// whether there is one, and how many servers that configuration has (-1:
// it cannot be read).
func (s *Server) ownEntry() (raft.Server, bool, int) {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return raft.Server{}, false, -1
	}
	servers := f.Configuration().Servers
	for _, srv := range servers {
		if srv.ID == raft.ServerID(s.id) {
			return srv, true, len(servers)
		}
	}
	return raft.Server{}, false, len(servers)
}
