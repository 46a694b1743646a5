package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Version is reported as RegisterNode.agent_version unless Config.Version is set.
var Version = "dev"

// Config of an agent. Flags of `atoll agent` map onto it one to one.
type Config struct {
	// Servers are the control plane's gRPC addresses (host:port).
	Servers []string
	// JoinToken authenticates the session (authorization: Bearer <token>).
	JoinToken string
	// DataDir keeps the node id (and the runtime's files, by convention).
	DataDir string
	// Name is the node name (default: the hostname).
	Name string
	// Labels are the node's labels, used by placement constraints.
	Labels map[string]string

	// Address is where published ports of this host are reachable by the
	// routers of other nodes (RegisterNode.address, instance addresses).
	Address string
	// BindIP is the host IP container ports are published on.
	BindIP string
	// RouterAddr is the listen address of the HTTP router; RouterAdvertise
	// is what the control plane is told (default: the bound address).
	RouterAddr      string
	RouterAdvertise string
	// ListenAddr serves AgentLogService; ListenAdvertise is what the control
	// plane dials (default: the bound address).
	ListenAddr      string
	ListenAdvertise string

	// TLS (opt-in; empty: plaintext). TLSCA (PEM) verifies the servers the
	// agent dials; TLSCert and TLSKey (PEM) make the log service serve TLS
	// (the control plane dials it with its own CA).
	TLSCA, TLSCert, TLSKey string

	// Capacity overrides (0: detect). CPU in millicores, memory and storage in MB.
	CPU, MemoryMB, StorageMB int
	// Reserve is subtracted from the capacity to give the allocatable resources.
	ReserveCPU, ReserveMemoryMB, ReserveStorageMB int
	// StorageRoot is the directory whose file system is measured for storage
	// ("" : /var/lib/docker when it exists, else DataDir).
	StorageRoot string

	// ContainerLabels are added to every container and volume the agent
	// creates, and select which containers it adopts (tests scope with them).
	ContainerLabels map[string]string

	// Timing.
	RPCTimeout        time.Duration // dial + registration, and every unary call
	BackoffMin        time.Duration // session rebuild backoff, doubling with jitter
	BackoffMax        time.Duration
	RestartBackoffMin time.Duration // restart of an exited container, doubling
	RestartBackoffMax time.Duration
	ImageRetry        time.Duration // retry of an image that could not be found
	PollInterval      time.Duration // how often container states are listed
	StopTimeout       time.Duration // SIGTERM grace period
	// ShutdownDelay: how long an instance that routers send requests to
	// keeps running after it was told to stop, before SIGTERM. The control
	// plane takes it out of every router's table in the same message, so
	// requests stop arriving before the app shuts down (0: stop at once).
	ShutdownDelay      time.Duration
	StatusBatch        time.Duration // delay after the first status change
	DefaultHeartbeat   time.Duration // until the server sets one
	DefaultUsagePeriod time.Duration // until the server sets one
	RuntimeTimeout     time.Duration // bound of one runtime call (image pulls have their own)

	Version    string
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
}

// DefaultConfig returns a configuration for a local single-host setup;
// Servers, JoinToken and DataDir still have to be set.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Name:               host,
		Address:            "127.0.0.1",
		BindIP:             "127.0.0.1",
		RouterAddr:         "127.0.0.1:7080",
		ListenAddr:         "127.0.0.1:7073",
		ReserveCPU:         100,
		ReserveMemoryMB:    256,
		ReserveStorageMB:   1024,
		RPCTimeout:         5 * time.Second,
		BackoffMin:         100 * time.Millisecond,
		BackoffMax:         5 * time.Second,
		RestartBackoffMin:  time.Second,
		RestartBackoffMax:  30 * time.Second,
		ImageRetry:         30 * time.Second,
		PollInterval:       time.Second,
		StopTimeout:        10 * time.Second,
		ShutdownDelay:      time.Second,
		StatusBatch:        100 * time.Millisecond,
		DefaultHeartbeat:   5 * time.Second,
		DefaultUsagePeriod: 10 * time.Second,
		RuntimeTimeout:     30 * time.Second,
	}
}

// Validate returns every problem of the configuration at once, wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Servers) == 0 {
		bad("servers: at least one control-plane address is required")
	}
	for _, s := range c.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			bad("servers: %q is not host:port", s)
		}
	}
	if c.JoinToken == "" {
		bad("join token is required")
	}
	if c.DataDir == "" {
		bad("data dir is required")
	} else if !filepath.IsAbs(c.DataDir) {
		bad("data dir %q must be an absolute path", c.DataDir)
	}
	if c.Name == "" {
		bad("name is required (the hostname could not be read)")
	}
	if net.ParseIP(c.Address) == nil && c.Address != "localhost" {
		bad("address %q is not an IP address", c.Address)
	}
	if net.ParseIP(c.BindIP) == nil {
		bad("bind IP %q is not an IP address", c.BindIP)
	}
	for name, a := range map[string]string{"router address": c.RouterAddr, "listen address": c.ListenAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("%s %q is not host:port", name, a)
		}
	}
	for name, v := range map[string]int{"cpu": c.CPU, "memory": c.MemoryMB, "storage": c.StorageMB,
		"reserve cpu": c.ReserveCPU, "reserve memory": c.ReserveMemoryMB, "reserve storage": c.ReserveStorageMB} {
		if v < 0 {
			bad("%s %d must not be negative", name, v)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("TLS certificate and key go together")
	}
	for k := range c.Labels {
		if k == "" || strings.ContainsAny(k, " =,") {
			bad("label key %q is invalid", k)
		}
	}
	for name, d := range map[string]time.Duration{
		"RPCTimeout": c.RPCTimeout, "BackoffMin": c.BackoffMin, "BackoffMax": c.BackoffMax,
		"RestartBackoffMin": c.RestartBackoffMin, "RestartBackoffMax": c.RestartBackoffMax,
		"ImageRetry": c.ImageRetry, "PollInterval": c.PollInterval, "StatusBatch": c.StatusBatch,
		"DefaultHeartbeat": c.DefaultHeartbeat, "DefaultUsagePeriod": c.DefaultUsagePeriod,
		"RuntimeTimeout": c.RuntimeTimeout,
	} {
		if d <= 0 {
			bad("%s %v must be positive", name, d)
		}
	}
	if c.StopTimeout < 0 {
		bad("StopTimeout %v must not be negative", c.StopTimeout)
	}
	if c.ShutdownDelay < 0 || c.ShutdownDelay > 5*time.Minute {
		bad("ShutdownDelay %v must be between 0 and 5m", c.ShutdownDelay)
	}
	if c.BackoffMax < c.BackoffMin {
		bad("BackoffMax %v is below BackoffMin %v", c.BackoffMax, c.BackoffMin)
	}
	if c.RestartBackoffMax < c.RestartBackoffMin {
		bad("RestartBackoffMax %v is below RestartBackoffMin %v", c.RestartBackoffMax, c.RestartBackoffMin)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}
