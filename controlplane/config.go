// Package controlplane is an atoll server: a raft voter holding the state,
// serving the gRPC and REST APIs, forwarding writes to the leader and running
// the leader-only loops.
package controlplane

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atollhq/atoll/controlplane/api"
)

// Config of a server. Start from DefaultConfig.
type Config struct {
	// NodeID names this server in raft; persisted in DataDir if empty.
	NodeID  string
	DataDir string
	// RaftAddr is where raft listens ("host:port", ":0" picks a port);
	// RaftAdvertise is what peers dial (default: the bound address).
	RaftAddr, RaftAdvertise string
	GRPCAddr, HTTPAddr      string
	// GRPCAdvertise is the address other servers use to forward to this one.
	GRPCAdvertise string

	// TLS (opt-in; all empty: plaintext). TLSCert and TLSKey (PEM files)
	// serve gRPC, HTTPS and raft; TLSCA verifies the servers and agents this
	// server dials (other servers, its own gateway, agents' log services).
	TLSCert, TLSKey, TLSCA string

	// Bootstrap a new cluster with this server as its only voter, and create
	// the first organization and its admin token.
	Bootstrap bool
	// Join lists gRPC addresses of servers of an existing cluster.
	Join      []string
	JoinToken string

	EventLimit   int
	MaxTTL       time.Duration
	ReapInterval time.Duration
	// ExpiryWarning: how long before an environment's TTL ends an "expiring" event is sent.
	ExpiryWarning time.Duration
	// DeletedRetention: how long a soft-deleted environment stays
	// restorable; the leader purges it after that. 0 keeps them forever.
	DeletedRetention time.Duration
	// RolloutMinHealthy: how long a new instance of a rolling update must
	// run before an old one stops for it (a container that crashes sooner
	// halts the rollout instead). 0: as soon as it runs.
	RolloutMinHealthy time.Duration
	OrgName           string

	// Raft timing and log compaction.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	TrailingLogs       uint64
	// ReadLease, when > 0, lets the leader serve consistent reads for this
	// long after a quorum confirmed its leadership, without a new round
	// (see reads.go for the assumptions). 0 (default): every read is
	// confirmed by a (shared) VerifyLeader round.
	ReadLease time.Duration
	// ApplyTimeout bounds one raft apply.
	ApplyTimeout time.Duration

	// Agents: heartbeat period and the silence after which a node is DOWN;
	// how often agents report usage.
	HeartbeatPeriod time.Duration
	NodeTTL         time.Duration
	UsagePeriod     time.Duration
	// Public app endpoints: an app's public endpoint is the hostname
	// <app>-<env>.<Domain> (the agents' routers route on it), reached at
	// PublicScheme://<hostname>:<RouterPort>/. RouterPort is the port users
	// reach the routers at (the agents' --router-addr port, or a load
	// balancer's in front of them); it is left out of URLs when it is the
	// scheme's default (80 for http, 443 for https) or 0.
	Domain       string
	RouterPort   int
	PublicScheme string

	LogOutput io.Writer
	LogLevel  string // debug, info, warn, error
	Registry  prometheus.Registerer
	// Gatherer serves /metrics (defaults to Registry when it is a *prometheus.Registry).
	Gatherer prometheus.Gatherer
	// OnAdminToken is called once with the bootstrap admin token (default: print to LogOutput).
	OnAdminToken func(secret string)
}

// DefaultConfig returns a config for a single server on localhost.
func DefaultConfig() Config {
	return Config{
		DataDir:            "atoll-data",
		RaftAddr:           "127.0.0.1:7072",
		GRPCAddr:           "127.0.0.1:7071",
		HTTPAddr:           "127.0.0.1:7070",
		EventLimit:         10000,
		MaxTTL:             720 * time.Hour,
		ReapInterval:       5 * time.Second,
		ExpiryWarning:      10 * time.Minute,
		DeletedRetention:   720 * time.Hour,
		RolloutMinHealthy:  5 * time.Second,
		OrgName:            "default",
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotInterval:   120 * time.Second,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
		ApplyTimeout:       10 * time.Second,
		HeartbeatPeriod:    1 * time.Second,
		NodeTTL:            5 * time.Second,
		UsagePeriod:        2 * time.Second,
		Domain:             "localhost",
		RouterPort:         7080,
		PublicScheme:       "http",
		LogOutput:          os.Stderr,
		LogLevel:           "info",
	}
}

// Validate returns every problem of the config at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required (--data-dir)"))
	}
	for name, v := range map[string]string{"raft address (--raft-addr)": c.RaftAddr, "gRPC address (--grpc-addr)": c.GRPCAddr, "HTTP address (--http-addr)": c.HTTPAddr} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	if c.Bootstrap && len(c.Join) > 0 {
		errs = append(errs, errors.New("--bootstrap and --join exclude each other: bootstrap the first server, join the others"))
	}
	if len(c.Join) > 0 && c.JoinToken == "" {
		errs = append(errs, errors.New("--join needs a token with cluster:admin (--token or ATOLL_TOKEN)"))
	}
	if c.RolloutMinHealthy < 0 {
		errs = append(errs, fmt.Errorf("--rollout-min-healthy %v must not be negative (0: the next old instance stops as soon as the new one runs)", c.RolloutMinHealthy))
	}
	if c.EventLimit < 1 {
		errs = append(errs, errors.New("event limit must be at least 1"))
	}
	if c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < c.HeartbeatTimeout {
		errs = append(errs, errors.New("raft: heartbeat timeout must be >= 5ms and election timeout >= heartbeat timeout"))
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		errs = append(errs, errors.New("raft: leader lease timeout must not exceed the heartbeat timeout"))
	}
	if c.ReadLease < 0 || c.ReadLease > c.LeaderLeaseTimeout {
		errs = append(errs, errors.New("raft: read lease must be between 0 and the leader lease timeout"))
	}
	if c.HeartbeatPeriod <= 0 || c.NodeTTL < 2*c.HeartbeatPeriod || c.UsagePeriod <= 0 {
		errs = append(errs, errors.New("agents: heartbeat period and usage period must be positive, node TTL at least twice the heartbeat period"))
	}
	if err := api.CheckPublicDomain(c.Domain); err != nil {
		errs = append(errs, fmt.Errorf("--public-domain: %w", err))
	}
	if c.RouterPort < 0 || c.RouterPort > 65535 {
		errs = append(errs, fmt.Errorf("--public-port %d: must be between 1 and 65535 (0: leave the port out of URLs)", c.RouterPort))
	}
	if c.PublicScheme != "http" && c.PublicScheme != "https" {
		errs = append(errs, fmt.Errorf("--public-scheme %q: must be http or https", c.PublicScheme))
	}
	if c.DeletedRetention < 0 {
		errs = append(errs, errors.New("deleted retention must be 0 (keep soft-deleted environments forever) or positive (--deleted-retention)"))
	}
	if c.ApplyTimeout <= 0 || c.ReapInterval <= 0 {
		errs = append(errs, errors.New("apply timeout and reap interval must be positive"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("TLS: --tls-cert and --tls-key go together"))
	}
	if c.TLSCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("TLS: --tls-ca needs --tls-cert and --tls-key (a server dials over TLS only when it serves TLS)"))
	}
	if c.TLSCert != "" && c.TLSCA == "" {
		errs = append(errs, errors.New("TLS: --tls-ca is required with --tls-cert (servers dial each other, and their own gateway, over TLS)"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log level %q: must be debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// DefaultGCPercent is the GOGC the atoll binary runs with when GOGC is not
// set: the state is many small immutable objects, and collecting less often
// buys create throughput (BENCHMARKS.md) for memory the state's size makes
// cheap.
const DefaultGCPercent = 400

// TuneGC applies DefaultGCPercent unless GOGC is set in the environment.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}
