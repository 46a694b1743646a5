package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/atollhq/atoll/agent"
	"github.com/atollhq/atoll/runtime/docker"
)

// agentCommand is `atoll agent`: run this host's agent on the local Docker Engine.
func agentCommand() *command {
	return &command{name: "agent", short: "run a host agent: containers on the local Docker Engine, router, logs", run: runAgentCmd}
}

func runAgentCmd(ctx context.Context, env *cliEnv, args []string) error {
	cfg := agent.DefaultConfig()
	fs := flag.NewFlagSet("atoll agent", flag.ContinueOnError)
	servers := fs.String("servers", env.getenv("ATOLL_SERVERS"), "comma-separated control-plane gRPC addresses (env ATOLL_SERVERS)")
	fs.StringVar(&cfg.JoinToken, "join-token", env.getenv("ATOLL_JOIN_TOKEN"), "join token created on the control plane (env ATOLL_JOIN_TOKEN)")
	dataDir := fs.String("data-dir", "./atoll-agent-data", "directory for the node id and container files")
	fs.StringVar(&cfg.Name, "name", cfg.Name, "node name")
	fs.StringVar(&cfg.Address, "address", cfg.Address, "IP where this host's published ports are reachable by other nodes")
	fs.StringVar(&cfg.BindIP, "bind-ip", cfg.BindIP, "host IP container ports are published on")
	fs.StringVar(&cfg.RouterAddr, "router-addr", cfg.RouterAddr, "listen address of the public-endpoint HTTP router")
	fs.StringVar(&cfg.RouterAdvertise, "router-advertise", "", "router address told to the control plane (default: the bound address)")
	fs.StringVar(&cfg.ListenAddr, "listen", cfg.ListenAddr, "listen address of the agent's gRPC service (logs)")
	fs.StringVar(&cfg.ListenAdvertise, "advertise", "", "agent gRPC address told to the control plane (default: the bound address)")
	fs.StringVar(&cfg.TLSCA, "tls-ca", env.getenv("ATOLL_CACERT"), "CA certificate (PEM) of servers that use TLS: dial them with TLS (env ATOLL_CACERT)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate (PEM) of the agent's gRPC service (with --tls-key; needed for logs when servers use TLS)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key (PEM) of --tls-cert")
	cpu := fs.String("cpu", "", "CPU capacity override: 4, 3.5 or 3500m (default: detected)")
	mem := fs.String("memory", "", "memory capacity override, "+memHelp+" (default: /proc/meminfo)")
	storage := fs.String("storage", "", "storage capacity override (default: the Docker data root's file system)")
	rcpu := fs.String("reserve-cpu", "100m", "CPU kept for the host")
	rmem := fs.String("reserve-memory", "256Mi", "memory kept for the host")
	rstorage := fs.String("reserve-storage", "1Gi", "storage kept for the host")
	fs.StringVar(&cfg.StorageRoot, "storage-root", "", "directory whose file system is measured for storage (default /var/lib/docker)")
	fs.DurationVar(&cfg.ShutdownDelay, "shutdown-delay", cfg.ShutdownDelay, "how long an instance with a public endpoint keeps serving after it is told to stop (the routers drop it first), before SIGTERM")
	fs.DurationVar(&cfg.StopTimeout, "stop-timeout", cfg.StopTimeout, "how long a container gets between SIGTERM and SIGKILL")
	var labels multiFlag
	fs.Var(&labels, "label", "node label key=value (repeatable)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:7074", "serve Prometheus /metrics here (\"\" : off)")
	if done, err := parseFlags(env, fs, args, "", "run a host agent: containers on the local Docker Engine, router, logs"); done || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("atoll agent: unexpected arguments %q", fs.Args())
	}
	if *servers != "" {
		for _, s := range strings.Split(*servers, ",") {
			if s = strings.TrimSpace(s); s != "" {
				cfg.Servers = append(cfg.Servers, s)
			}
		}
	}
	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		return usagef("--data-dir: %v", err)
	}
	cfg.DataDir = abs
	set, _, err := parseLabels(labels, false)
	if err != nil {
		return err
	}
	cfg.Labels = set
	var errs []error
	parse := func(dst *int, name, v string, f func(string) (int32, error)) {
		if v == "" {
			return
		}
		n, err := f(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", name, err))
			return
		}
		*dst = int(n)
	}
	mb := func(what string) func(string) (int32, error) {
		return func(s string) (int32, error) { return parseMB(what, s) }
	}
	parse(&cfg.CPU, "cpu", *cpu, parseCPU)
	parse(&cfg.MemoryMB, "memory", *mem, mb("memory"))
	parse(&cfg.StorageMB, "storage", *storage, mb("storage"))
	parse(&cfg.ReserveCPU, "reserve-cpu", *rcpu, parseCPU)
	parse(&cfg.ReserveMemoryMB, "reserve-memory", *rmem, mb("memory"))
	parse(&cfg.ReserveStorageMB, "reserve-storage", *rstorage, mb("storage"))
	if len(errs) > 0 {
		return usagef("%v", errors.Join(errs...))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log-level: %v", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))
	cfg.Version = version
	if err := cfg.Validate(); err != nil {
		// The configuration names its fields; say the flags they come from.
		return usagef("%s", strings.NewReplacer("StopTimeout", "--stop-timeout", "ShutdownDelay", "--shutdown-delay").Replace(err.Error()))
	}
	return runAgent(ctx, cfg, prometheus.NewRegistry(), *metricsAddr)
}

// runAgent runs an agent on the local Docker Engine until ctx is done,
// serving its metrics on metricsAddr ("" : not served).
func runAgent(ctx context.Context, cfg agent.Config, reg *prometheus.Registry, metricsAddr string) error {
	a, closeRT, err := newDockerAgent(cfg, reg)
	if err != nil {
		return err
	}
	defer closeRT()
	if metricsAddr != "" {
		lis, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(lis) }()
		defer srv.Close()
	}
	if cfg.TLSCA != "" || cfg.TLSCert != "" {
		defer reloadOnHUP(ctx, a.ReloadTLS)()
	}
	return a.Run(ctx)
}

// newDockerAgent builds an agent on the local Docker Engine (`atoll agent`
// and the agent inside `atoll dev`). A Docker Engine that does not answer is
// reported by the agent, which keeps retrying.
func newDockerAgent(cfg agent.Config, reg prometheus.Registerer) (*agent.Agent, func(), error) {
	dcfg := docker.DefaultConfig()
	dcfg.FilesDir = filepath.Join(cfg.DataDir, "files")
	dcfg.Logger = cfg.Logger
	rt, err := docker.New(dcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("docker runtime: %w", err)
	}
	cfg.Registerer = reg
	a, err := agent.New(cfg, rt)
	if err != nil {
		rt.Close()
		return nil, nil, err
	}
	return a, func() { rt.Close() }, nil
}
