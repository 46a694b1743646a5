package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/atollhq/atoll/controlplane"
)

func serverFlags(fs *flag.FlagSet, cfg *controlplane.Config, getenv func(string) string) *string {
	fs.StringVar(&cfg.NodeID, "node-id", cfg.NodeID, "server id (default: generated and kept in the data dir)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the raft log, snapshots and the admin token")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "raft listen address")
	fs.StringVar(&cfg.RaftAdvertise, "raft-advertise", cfg.RaftAdvertise, "raft address other servers dial (default: raft-addr)")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "gRPC API listen address")
	fs.StringVar(&cfg.GRPCAdvertise, "grpc-advertise", cfg.GRPCAdvertise, "gRPC address other servers use to forward to this one")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "REST API and /metrics listen address")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.DurationVar(&cfg.MaxTTL, "max-ttl", cfg.MaxTTL, "longest environment TTL accepted")
	join := fs.String("join", "", "comma-separated gRPC addresses of servers of the cluster to join")
	fs.StringVar(&cfg.JoinToken, "token", getenv("ATOLL_TOKEN"), "token with cluster:admin, for --join (env ATOLL_TOKEN)")
	return join
}

func runServer(ctx context.Context, env *cliEnv, args []string) error {
	cfg := controlplane.DefaultConfig()
	cfg.LogOutput = env.stderr
	fs := flag.NewFlagSet("atoll server", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	join := serverFlags(fs, &cfg, env.getenv)
	fs.BoolVar(&cfg.Bootstrap, "bootstrap", false, "start a new cluster with this server, and create the first organization and admin token")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
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
	fmt.Fprintf(env.stdout, "atoll server %s: API http://%s (REST) %s (gRPC), raft %s\n", s.ID(), s.HTTPAddr(), s.GRPCAddr(), s.RaftAddr())
	<-ctx.Done()
	fmt.Fprintln(env.stderr, "shutting down...")
	return s.Close()
}

func runDev(ctx context.Context, env *cliEnv, args []string) error {
	cfg := controlplane.DefaultConfig()
	cfg.LogOutput = env.stderr
	cfg.LogLevel = "warn"
	cfg.NodeID = "dev"
	fs := flag.NewFlagSet("atoll dev", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	serverFlags(fs, &cfg, env.getenv)
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	cfg.Bootstrap = true
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
	tokenPath := cfg.DataDir + "/admin.token"
	var token string
	select {
	case token = <-tokenCh:
	case <-time.After(1500 * time.Millisecond):
		b, err := os.ReadFile(tokenPath)
		if err != nil {
			return fmt.Errorf("no admin token in %s: %w", tokenPath, err)
		}
		token = strings.TrimSpace(string(b))
	case <-ctx.Done():
		return nil
	}
	printDevBanner(env.stdout, s, token, tokenPath)
	<-ctx.Done()
	fmt.Fprintln(env.stderr, "shutting down...")
	return nil
}

func printDevBanner(w io.Writer, s *controlplane.Server, token, tokenPath string) {
	fmt.Fprintf(w, "atoll dev: API http://%s (REST)  %s (gRPC)\n", s.HTTPAddr(), s.GRPCAddr())
	short := token
	if len(short) > 12 {
		short = short[:12] + "…"
	}
	fmt.Fprintf(w, "           admin token %s  (saved to %s)\n", short, tokenPath)
	fmt.Fprintf(w, "\n  export ATOLL_ADDR=%s ATOLL_TOKEN=$(cat %s)\n  atoll env create demo\n  curl -H \"Authorization: Bearer $ATOLL_TOKEN\" http://%s/v1/environments\n\nCtrl-C stops it; data stays in %s.\n",
		s.GRPCAddr(), tokenPath, s.HTTPAddr(), strings.TrimSuffix(tokenPath, "/admin.token"))
}
