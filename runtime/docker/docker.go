package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/atollhq/atoll/runtime"
)

// DefaultCapAdd is the capability set every container keeps after dropping
// ALL: enough for images that start as root to chown their files, switch to
// their own user and group, and bind ports below 1024. Everything else stays
// dropped; notably DAC_OVERRIDE (root in the container cannot read files it
// does not own), NET_RAW (no raw sockets or ARP spoofing), SYS_CHROOT, MKNOD,
// KILL, FOWNER, FSETID, SETFCAP, SETPCAP and AUDIT_WRITE.
var DefaultCapAdd = []string{"CHOWN", "SETUID", "SETGID", "NET_BIND_SERVICE"}

// Config of the Docker runtime.
type Config struct {
	// FilesDir is where the files of ContainerSpec.Files are written; the
	// agent points it into its data directory.
	FilesDir string
	// PullTimeout bounds one EnsureImage pull; PullStallTimeout abandons it
	// earlier when the engine reports no progress for that long.
	PullTimeout      time.Duration
	PullStallTimeout time.Duration
	// CapAdd are the capabilities kept after dropping ALL.
	CapAdd []string
	// DefaultPidsLimit applies when a spec's Limits.PidsLimit is 0.
	DefaultPidsLimit int64
	// Network the containers join; "" is the engine's default bridge.
	Network string
	// LogMaxSize and LogMaxFiles bound the json-file log of each container.
	LogMaxSize  string
	LogMaxFiles int
	// StatsSampleInterval is the gap between the two CPU samples Stats
	// takes when it has no earlier sample of the container.
	StatsSampleInterval time.Duration
	// ExecOutputLimit caps the bytes kept of each of Exec's stdout and stderr.
	ExecOutputLimit int
	// Logger receives debug lines; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a working configuration.
func DefaultConfig() Config {
	return Config{
		FilesDir:            filepath.Join(os.TempDir(), "atoll-files"),
		PullTimeout:         10 * time.Minute,
		PullStallTimeout:    30 * time.Second,
		CapAdd:              append([]string(nil), DefaultCapAdd...),
		DefaultPidsLimit:    runtime.DefaultPidsLimit,
		LogMaxSize:          "10m",
		LogMaxFiles:         3,
		StatsSampleInterval: 250 * time.Millisecond,
		ExecOutputLimit:     1 << 20,
	}
}

// Validate returns every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.FilesDir == "" || !filepath.IsAbs(c.FilesDir) {
		errs = append(errs, fmt.Errorf("FilesDir %q must be an absolute path", c.FilesDir))
	}
	if c.PullTimeout <= 0 {
		errs = append(errs, fmt.Errorf("PullTimeout %v must be positive", c.PullTimeout))
	}
	if c.PullStallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("PullStallTimeout %v must be positive", c.PullStallTimeout))
	}
	if c.DefaultPidsLimit <= 0 {
		errs = append(errs, fmt.Errorf("DefaultPidsLimit %d must be positive", c.DefaultPidsLimit))
	}
	if c.LogMaxFiles < 1 {
		errs = append(errs, fmt.Errorf("LogMaxFiles %d must be at least 1", c.LogMaxFiles))
	}
	if c.StatsSampleInterval <= 0 {
		errs = append(errs, fmt.Errorf("StatsSampleInterval %v must be positive", c.StatsSampleInterval))
	}
	if c.ExecOutputLimit <= 0 {
		errs = append(errs, fmt.Errorf("ExecOutputLimit %d must be positive", c.ExecOutputLimit))
	}
	return errors.Join(errs...)
}

// Runtime is the Docker implementation of runtime.Runtime. It is safe for
// concurrent use.
type Runtime struct {
	cli client.APIClient
	cfg Config
	log *slog.Logger

	// session tells this Runtime's probe containers from those of other
	// (earlier) ones; see RemoveStaleProbes.
	session string

	mu      sync.Mutex
	cpu     map[string]cpuSample // last CPU sample per container id, for Stats
	userDBs map[string]userDB    // image id -> its /etc/passwd and /etc/group
	probes  map[string]struct{}  // names of the probe containers in use
}

var _ runtime.ProbeRemover = (*Runtime)(nil)

var _ runtime.Runtime = (*Runtime)(nil)

// New connects to the engine named by the environment (DOCKER_HOST, ...),
// negotiating the API version.
func New(cfg Config) (*Runtime, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	r, err := NewWithClient(cli, cfg)
	if err != nil {
		cli.Close()
		return nil, err
	}
	return r, nil
}

// NewWithClient uses an existing client; Close closes it.
func NewWithClient(cli client.APIClient, cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("docker runtime config: %w", err)
	}
	if err := os.MkdirAll(cfg.FilesDir, 0o700); err != nil {
		return nil, fmt.Errorf("docker runtime files dir: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Runtime{
		cli:     cli,
		cfg:     cfg,
		log:     log,
		session: randomHex(8),
		cpu:     map[string]cpuSample{},
		userDBs: map[string]userDB{},
		probes:  map[string]struct{}{},
	}, nil
}

// Close releases the client.
func (r *Runtime) Close() error { return r.cli.Close() }

// Ping checks that the engine answers.
func (r *Runtime) Ping(ctx context.Context) error {
	if _, err := r.cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker ping: %w", err)
	}
	return nil
}
