package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atollhq/atoll/agent"
	"github.com/atollhq/atoll/controlplane"
)

func serverFlags(fs *flag.FlagSet, cfg *controlplane.Config) {
	fs.StringVar(&cfg.NodeID, "node-id", cfg.NodeID, "server id (default: generated and kept in the data dir)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the raft log, snapshots and the admin token")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "raft listen address")
	fs.StringVar(&cfg.RaftAdvertise, "raft-advertise", cfg.RaftAdvertise, "raft address other servers dial (default: raft-addr)")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "gRPC API listen address")
	fs.StringVar(&cfg.GRPCAdvertise, "grpc-advertise", cfg.GRPCAdvertise, "gRPC address other servers use to forward to this one")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "REST API and /metrics listen address")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.DurationVar(&cfg.MaxTTL, "max-ttl", cfg.MaxTTL, "longest environment TTL accepted")
	fs.DurationVar(&cfg.DeletedRetention, "deleted-retention", cfg.DeletedRetention, "how long a deleted environment stays restorable before it is purged (0: forever)")
	fs.DurationVar(&cfg.RolloutMinHealthy, "rollout-min-healthy", cfg.RolloutMinHealthy, "how long a new instance of a rolling update must run before the next old one is stopped (0: as soon as it runs)")
	publicFlags(fs, cfg)
}

// joinFlags are `atoll server`'s alone: atoll dev always bootstraps.
func joinFlags(fs *flag.FlagSet, cfg *controlplane.Config, getenv func(string) string) *string {
	join := fs.String("join", "", "comma-separated gRPC addresses of servers of the cluster to join")
	fs.StringVar(&cfg.JoinToken, "token", getenv("ATOLL_TOKEN"), "token with cluster:admin, for --join (env ATOLL_TOKEN)")
	return join
}

// publicFlags say where users reach apps' public endpoints: the hostname
// <app>-<env>.<public-domain> (the agents' routers route on it; point a
// wildcard DNS record *.<public-domain> at the agents or at a load balancer
// in front of them) and the scheme and port in the URLs the API shows.
func publicFlags(fs *flag.FlagSet, cfg *controlplane.Config) {
	fs.StringVar(&cfg.Domain, "public-domain", cfg.Domain, "domain of public app hostnames: apps at <app>-<env>.<domain> (point *.<domain> at the agents or their load balancer)")
	fs.IntVar(&cfg.RouterPort, "public-port", cfg.RouterPort, "port in public app URLs: the agents' --router-addr port or a load balancer's (left out when 80 for http, 443 for https)")
	fs.StringVar(&cfg.PublicScheme, "public-scheme", cfg.PublicScheme, "scheme of public app URLs: http, or https when a TLS-terminating proxy is in front of the agents")
}

func runServer(ctx context.Context, env *cliEnv, args []string) error {
	cfg := controlplane.DefaultConfig()
	cfg.LogOutput = env.stderr
	fs := flag.NewFlagSet("atoll server", flag.ContinueOnError)
	serverFlags(fs, &cfg)
	join := joinFlags(fs, &cfg, env.getenv)
	// TLS is for clusters; atoll dev stays plaintext.
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "TLS certificate (PEM): serve gRPC, HTTPS and raft over TLS (with --tls-key and --tls-ca)")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "TLS private key (PEM) of --tls-cert")
	fs.StringVar(&cfg.TLSCA, "tls-ca", cfg.TLSCA, "CA certificate (PEM) that verifies the other servers and the agents this server dials")
	fs.BoolVar(&cfg.Bootstrap, "bootstrap", false, "start a new cluster with this server, and create the first organization and admin token")
	if done, err := parseFlags(env, fs, args, "", "run a control-plane server (raft voter): --bootstrap the first one, --join the others"); done || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("atoll server: unexpected arguments %q (run `atoll server --help`)", fs.Args())
	}
	if *join != "" {
		cfg.Join = strings.Split(*join, ",")
	}
	s, err := controlplane.New(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		s.Close()
		return err
	}
	scheme, sec := "http", ""
	if s.TLS() {
		scheme, sec = "https", ", TLS"
		defer reloadOnHUP(ctx, s.ReloadTLS)()
	}
	fmt.Fprintf(env.stdout, "atoll server %s: API %s://%s (REST) %s (gRPC), raft %s%s\n", s.ID(), scheme, s.HTTPAddr(), s.GRPCAddr(), s.RaftAddr(), sec)
	fmt.Fprintf(env.stdout, "             apps at %s\n", s.PublicURLPattern())
	select {
	case <-ctx.Done():
	case err := <-s.Failed():
		// e.g. --join refused for good: no point retrying.
		s.Close()
		return err
	}
	fmt.Fprintln(env.stderr, "shutting down...")
	return s.Close()
}

func runDev(ctx context.Context, env *cliEnv, args []string) error {
	cfg := controlplane.DefaultConfig()
	cfg.LogOutput = env.stderr
	cfg.LogLevel = "warn"
	cfg.NodeID = "dev"
	fs := flag.NewFlagSet("atoll dev", flag.ContinueOnError)
	serverFlags(fs, &cfg)
	routerAddr := fs.String("router-addr", "127.0.0.1:7080", "the local agent's HTTP router: apps at http://<app>-<env>.<domain>:<port> (the port is --public-port's default)")
	agentAddr := fs.String("agent-addr", "127.0.0.1:7073", "the local agent's own gRPC endpoint (logs)")
	noAgent := fs.Bool("no-agent", false, "run only the server, without the local agent")
	fs.StringVar(&cfg.Domain, "domain", cfg.Domain, "same as --public-domain")
	if done, err := parseFlags(env, fs, args, "", "run one server and a local agent in this process (data in ./atoll-data)"); done || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("atoll dev: unexpected arguments %q (run `atoll dev --help`)", fs.Args())
	}
	if _, port, err := net.SplitHostPort(*routerAddr); err == nil && !setFlags(fs)["public-port"] {
		cfg.RouterPort, _ = strconv.Atoi(port)
	}
	cfg.Bootstrap = true
	reg := prometheus.NewRegistry() // server and local agent metrics on one /metrics
	cfg.Registry, cfg.Gatherer = reg, reg
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
	tokenCh := make(chan string, 1)
	cfg.OnAdminToken = func(s string) { tokenCh <- s }
	s, err := controlplane.New(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		s.Close()
		return err
	}
	defer s.Close()
	tokenPath := filepath.Join(cfg.DataDir, "admin.token")
	token, err := waitAdminToken(ctx, tokenCh, tokenPath)
	if err != nil || ctx.Err() != nil {
		return err
	}
	var local *agent.Agent
	agentDone := make(chan error, 1)
	if !*noAgent {
		// After a restart the server first replays its log; the agent's
		// token is not known before that, so its first session would be
		// refused (and logged). Wait for it, bounded.
		awaitReplayed(ctx, s, 30*time.Second)
		a, dockerErr, err := startLocalAgent(ctx, env, cfg, s.GRPCAddr(), token, *routerAddr, *agentAddr, agentDone)
		if err != nil {
			return err
		}
		local = a
		if dockerErr != nil {
			fmt.Fprintf(env.stderr, "warning: Docker is not reachable (%v).\n  The API serves, but apps cannot run until the Docker Engine is up; the agent keeps retrying.\n", dockerErr)
		}
	}
	printDevBanner(env.stdout, s, token, tokenPath, local)
	<-ctx.Done()
	fmt.Fprintln(env.stderr, "shutting down...")
	if local != nil {
		select {
		case <-agentDone:
		case <-time.After(10 * time.Second):
		}
	}
	return nil
}

// waitAdminToken returns the bootstrap token: printed by a new cluster, or
// read from the data dir of an existing one.
func waitAdminToken(ctx context.Context, tokenCh <-chan string, path string) (string, error) {
	deadline := time.After(15 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case t := <-tokenCh:
			return t, nil
		case <-ctx.Done():
			return "", nil
		case <-deadline:
			return "", fmt.Errorf("no admin token after 15s (expected in %s): is another atoll using this data dir?", path)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startLocalAgent runs an agent in this process against the local Docker Engine.
func startLocalAgent(ctx context.Context, env *cliEnv, cfg controlplane.Config, grpcAddr, token, routerAddr, agentAddr string, done chan<- error) (*agent.Agent, error, error) {
	dataDir, err := filepath.Abs(filepath.Join(cfg.DataDir, "agent"))
	if err != nil {
		return nil, nil, err
	}
	acfg := agent.DefaultConfig()
	acfg.Servers = []string{grpcAddr}
	acfg.JoinToken = token
	acfg.DataDir = dataDir
	acfg.RouterAddr = routerAddr
	acfg.ListenAddr = agentAddr
	acfg.Version = version
	acfg.Logger = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, closeRT, err := newDockerAgent(acfg, cfg.Registry)
	if err != nil {
		return nil, nil, fmt.Errorf("local agent: %w", err)
	}
	var dockerErr error
	if cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation()); err != nil {
		dockerErr = err
	} else {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, dockerErr = cli.Ping(pctx)
		cancel()
		cli.Close()
	}
	go func() {
		defer closeRT()
		done <- a.Run(ctx)
	}()
	return a, dockerErr, nil
}

func printDevBanner(w io.Writer, s *controlplane.Server, token, tokenPath string, a *agent.Agent) {
	fmt.Fprintf(w, "atoll dev: API http://%s (REST)  %s (gRPC)\n", s.HTTPAddr(), s.GRPCAddr())
	if a != nil {
		fmt.Fprintf(w, "           apps at %s (router on %s)\n", s.PublicURLPattern(), a.RouterAddr())
	}
	short := token
	if len(short) > 12 {
		short = short[:12] + "…"
	}
	fmt.Fprintf(w, "           admin token %s  (saved to %s)\n", short, tokenPath)
	fmt.Fprintf(w, "\n  export ATOLL_ADDR=%s ATOLL_TOKEN=$(cat %s)\n  atoll env create demo\n  curl -H \"Authorization: Bearer $ATOLL_TOKEN\" http://%s/v1/environments\n\nCtrl-C stops atoll; data stays in %s. Apps keep running in Docker and are adopted\nat the next start (atoll env stop NAME stops an environment's apps).\n",
		s.GRPCAddr(), tokenPath, s.HTTPAddr(), strings.TrimSuffix(tokenPath, "/admin.token"))
}

// awaitReplayed waits until s has replayed its raft log (see
// controlplane.Server.Replaying), ctx ends or max passes.
func awaitReplayed(ctx context.Context, s *controlplane.Server, max time.Duration) {
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.Replaying() {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}
