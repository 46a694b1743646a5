// Package cptest starts real control-plane servers (real raft, raft-boltdb,
// TCP on loopback, gRPC, REST) for tests, and offers helpers to kill,
// restart and inspect them. A later multi-host harness reuses it.
package cptest

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/internal/tlsutil/tlstest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Cluster is a set of servers started by NewCluster.
type Cluster struct {
	t       testing.TB
	Servers []*controlplane.Server
	Configs []controlplane.Config
	// AdminToken is the bootstrap organization's admin token.
	AdminToken string
	mu         sync.Mutex
}

// Option tweaks each server's config.
type Option func(i int, c *controlplane.Config)

// FastRaft makes elections quick on loopback.
func FastRaft(_ int, c *controlplane.Config) {
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
}

// TLS makes every server serve TLS with the files of f (tlstest.Generate).
func TLS(f tlstest.Files) Option {
	return func(_ int, c *controlplane.Config) {
		c.TLSCert, c.TLSKey, c.TLSCA = f.Cert, f.Key, f.CA
	}
}

type tlogWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// Config returns a test config for server i with a temp data dir.
func Config(t testing.TB, i int) controlplane.Config {
	c := controlplane.DefaultConfig()
	c.NodeID = fmt.Sprintf("server-%d", i)
	c.DataDir = t.TempDir()
	c.RaftAddr, c.GRPCAddr, c.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	w := &tlogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	c.LogOutput = w
	c.LogLevel = "warn"
	c.Registry = prometheus.NewRegistry()
	c.RolloutMinHealthy = 0 // tests that need it set it
	FastRaft(i, &c)
	return c
}

// NewCluster starts n servers: the first bootstraps, the others join it.
func NewCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	tokenCh := make(chan string, 1)
	for i := 0; i < n; i++ {
		cfg := Config(t, i)
		if i == 0 {
			cfg.Bootstrap = true
			cfg.OnAdminToken = func(s string) { tokenCh <- s }
		}
		for _, o := range opts {
			o(i, &cfg)
		}
		if i > 0 {
			cfg.Join = []string{c.Servers[0].GRPCAddr()}
			cfg.JoinToken = c.AdminToken
		}
		c.start(cfg)
		if i == 0 {
			select {
			case c.AdminToken = <-tokenCh:
			case <-time.After(20 * time.Second):
				t.Fatal("bootstrap server did not create an admin token")
			}
		}
	}
	c.WaitMembers(n)
	return c
}

func (c *Cluster) start(cfg controlplane.Config) *controlplane.Server {
	c.t.Helper()
	s, err := controlplane.New(cfg)
	if err != nil {
		c.t.Fatalf("start server: %v", err)
	}
	if err := s.Start(); err != nil {
		c.t.Fatalf("start server: %v", err)
	}
	c.t.Cleanup(func() { _ = s.Close() })
	c.mu.Lock()
	c.Servers = append(c.Servers, s)
	c.Configs = append(c.Configs, cfg)
	c.mu.Unlock()
	return s
}

// WaitFor polls cond until it holds or the timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitMembers waits until the leader's configuration has n voters and every
// live server knows the leader.
func (c *Cluster) WaitMembers(n int) {
	c.t.Helper()
	WaitFor(c.t, 30*time.Second, fmt.Sprintf("%d raft voters", n), func() bool {
		l := c.Leader()
		if l == nil {
			return false
		}
		f := l.Raft().GetConfiguration()
		if f.Error() != nil || len(f.Configuration().Servers) != n {
			return false
		}
		st, _ := l.State()
		return len(st.Snapshot().Servers()) >= n
	})
}

// Leader returns the current ready leader among live servers, or nil.
func (c *Cluster) Leader() *controlplane.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.Servers {
		if s != nil && s.IsLeader() {
			return s
		}
	}
	return nil
}

// WaitLeader waits for a leader and returns it.
func (c *Cluster) WaitLeader() *controlplane.Server {
	c.t.Helper()
	var l *controlplane.Server
	WaitFor(c.t, 30*time.Second, "a leader", func() bool { l = c.Leader(); return l != nil })
	return l
}

// Followers returns the live servers that are not the leader.
func (c *Cluster) Followers() []*controlplane.Server {
	l := c.WaitLeader()
	var out []*controlplane.Server
	for _, s := range c.Live() {
		if s != l {
			out = append(out, s)
		}
	}
	return out
}

// Live returns the running servers.
func (c *Cluster) Live() []*controlplane.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*controlplane.Server
	for _, s := range c.Servers {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// Kill stops server i abruptly (raft shut down, listeners closed); its data dir stays.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	s := c.Servers[i]
	c.Servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		_ = s.Close()
	}
}

// Index returns the position of s in the cluster.
func (c *Cluster) Index(s *controlplane.Server) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.Servers {
		if x == s {
			return i
		}
	}
	return -1
}

// Restart starts server i again on its data dir (new ports).
func (c *Cluster) Restart(i int) *controlplane.Server {
	c.t.Helper()
	cfg := c.Configs[i]
	cfg.Bootstrap = false
	cfg.RaftAddr, cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Registry = prometheus.NewRegistry()
	cfg.Gatherer = nil
	l := c.WaitLeader()
	cfg.Join = []string{l.GRPCAddr()}
	cfg.JoinToken = c.AdminToken
	s, err := controlplane.New(cfg)
	if err != nil {
		c.t.Fatalf("restart server %d: %v", i, err)
	}
	if err := s.Start(); err != nil {
		c.t.Fatalf("restart server %d: %v", i, err)
	}
	c.t.Cleanup(func() { _ = s.Close() })
	c.mu.Lock()
	c.Servers[i] = s
	c.mu.Unlock()
	return s
}

// Conn dials a server's gRPC endpoint.
func Conn(t testing.TB, s *controlplane.Server) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Ctx returns a context carrying a bearer token, cancelled at test end.
func Ctx(t testing.TB, token string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// StateHash returns a server's own state hash and applied index.
func StateHash(t testing.TB, s *controlplane.Server) (string, uint64) {
	t.Helper()
	st, _ := s.State()
	tx := st.Snapshot()
	h, err := tx.Hash()
	if err != nil {
		t.Fatal(err)
	}
	return h, tx.AppliedIndex()
}

// Envs is a shorthand for an EnvironmentService client.
func Envs(t testing.TB, s *controlplane.Server) atollv1.EnvironmentServiceClient {
	return atollv1.NewEnvironmentServiceClient(Conn(t, s))
}

// Discard is an io.Writer that drops logs.
var Discard io.Writer = io.Discard

// Snapshots makes servers snapshot and compact their raft log often, so
// tests can exercise catch-up by InstallSnapshot.
func Snapshots(threshold, trailing uint64, interval time.Duration) Option {
	return func(_ int, c *controlplane.Config) {
		c.SnapshotThreshold, c.TrailingLogs, c.SnapshotInterval = threshold, trailing, interval
	}
}

// RaftStat returns a numeric raft stat of a server (0 if absent).
func RaftStat(s *controlplane.Server, key string) uint64 {
	v, _ := strconv.ParseUint(s.Raft().Stats()[key], 10, 64)
	return v
}

// WaitConverged waits until every live server has applied the same index
// and holds the same state hash, and returns that hash. Equal indexes with
// different hashes fail the test at once: the replicas diverged.
func (c *Cluster) WaitConverged(timeout time.Duration) string {
	c.t.Helper()
	var hash string
	WaitFor(c.t, timeout, "live servers to converge on one state", func() bool {
		live := c.Live()
		var idx0 uint64
		for i, s := range live {
			h, idx := StateHash(c.t, s)
			if i == 0 {
				hash, idx0 = h, idx
				continue
			}
			if idx != idx0 {
				return false
			}
			if h != hash {
				c.t.Fatalf("servers %s and %s diverged: same applied index %d, hashes %s and %s", live[0].ID(), s.ID(), idx, hash, h)
			}
		}
		return true
	})
	return hash
}

// Ops is a shorthand for an OperatorService client.
func Ops(t testing.TB, s *controlplane.Server) atollv1.OperatorServiceClient {
	return atollv1.NewOperatorServiceClient(Conn(t, s))
}

// Orgs is a shorthand for an OrganizationService client.
func Orgs(t testing.TB, s *controlplane.Server) atollv1.OrganizationServiceClient {
	return atollv1.NewOrganizationServiceClient(Conn(t, s))
}
