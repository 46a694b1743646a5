package runtime

import (
	"io/fs"
	"time"
)

// MB is the unit of memory and storage sizes in atoll: 2^20 bytes.
const MB = 1 << 20

// Well-known label keys. The agent puts them on every container and volume
// it creates, so that after a restart it adopts what is running instead of
// duplicating it.
const (
	LabelAlloc = "atoll.alloc"
	LabelApp   = "atoll.app"
	LabelEnv   = "atoll.env"
	LabelOrg   = "atoll.org"
)

// ContainerSpec is everything needed to create one container.
type ContainerSpec struct {
	// Name is the container name, unique on the host (e.g. the allocation id).
	Name string
	// Image is a name:tag reference; it must be present (see EnsureImage).
	Image string
	// Command replaces the image's ENTRYPOINT when not empty.
	Command []string
	// Args replaces the image's CMD when not empty. Use SplitArgs to turn a
	// user's shell-like string into Args.
	Args []string
	// Env is the environment added to the image's.
	Env map[string]string
	// Files are single files mounted read-only into the container.
	Files []FileMount
	// Volumes are named volumes mounted read-write (unless ReadOnly).
	Volumes []VolumeMount
	// Ports are exposed, and published on the host when Publish is set.
	Ports []Port
	// Limits bound CPU, memory, processes and storage.
	Limits Limits
	// Labels are set on the container; List selects by them.
	Labels map[string]string
}

// FileMount is one file the runtime writes on the host and bind-mounts
// read-only at MountPath. The content comes from Content, or is copied from
// HostPath when that is set (the source file itself is never changed).
type FileMount struct {
	HostPath  string
	Content   []byte
	MountPath string
	// Owner is "" or "root" (0:0), "UID", "UID:GID", "NAME" or "NAME:GROUP";
	// names are looked up in the image's /etc/passwd and /etc/group.
	Owner string
	// Mode is the permission bits; 0 means 0444.
	Mode fs.FileMode
}

// DefaultFileMode is the mode of a mounted file whose FileMount.Mode is 0.
const DefaultFileMode fs.FileMode = 0o444

// VolumeMount mounts a named volume (see EnsureVolume) at Path.
type VolumeMount struct {
	VolumeName string
	Path       string
	ReadOnly   bool
}

// Protocol of a port.
type Protocol string

// Protocols.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// Port is a container port. It is always exposed; with Publish it is also
// bound on the host at HostIP:HostPort (HostIP defaults to 127.0.0.1, and
// HostPort 0 lets the engine choose a free port; see ContainerInfo.Ports).
type Port struct {
	Name     string
	Number   int
	Protocol Protocol // "" means TCP
	Publish  bool
	HostIP   string
	HostPort int
}

// DefaultHostIP is where published ports are bound when Port.HostIP is "".
const DefaultHostIP = "127.0.0.1"

// Limits of one container. Zero means "no limit" except for PidsLimit,
// where it means the runtime's default.
type Limits struct {
	// MilliCPU is CPU in millicores (1000 = one core).
	MilliCPU int64
	// MemoryBytes is the memory limit; swap is never allowed beyond it.
	MemoryBytes int64
	// PidsLimit caps the number of processes and threads.
	PidsLimit int64
	// StorageMB is the storage allowance (writable layer + named volumes).
	// Engines rarely enforce it at create time; the agent compares it with
	// Stats.StorageMB and acts.
	StorageMB int64
}

// NanoCPUs converts MilliCPU to the engine's unit (1e9 = one core).
func (l Limits) NanoCPUs() int64 { return l.MilliCPU * 1_000_000 }

// DefaultPidsLimit is the process limit of a container whose Limits.PidsLimit is 0.
const DefaultPidsLimit = 512

// State of a container, as the engine names it.
type State string

// States. A container is created, then running, then exited; dead means the
// engine failed to remove or stop it.
const (
	StateCreated    State = "created"
	StateRunning    State = "running"
	StatePaused     State = "paused"
	StateRestarting State = "restarting"
	StateRemoving   State = "removing"
	StateExited     State = "exited"
	StateDead       State = "dead"
)

// ContainerInfo describes one container. List fills ID, Name, Image, Labels,
// State, CreatedAt, IPAddress and Ports; Inspect fills every field. IPAddress
// and Ports are only set while the container runs.
type ContainerInfo struct {
	ID     string
	Name   string // without the engine's leading "/"
	Image  string // the reference it was created from
	Labels map[string]string
	State  State

	ExitCode   int
	OOMKilled  bool
	Error      string // the engine's error, e.g. when the entrypoint cannot be run
	CreatedAt  time.Time
	StartedAt  time.Time // zero if never started
	FinishedAt time.Time // zero if never exited

	// IPAddress is the container's address on its network ("" if not running).
	IPAddress string
	// Ports lists the published ports with the host port actually bound.
	Ports []PortBinding
}

// Running reports whether the container's process is alive.
func (c ContainerInfo) Running() bool {
	return c.State == StateRunning || c.State == StatePaused || c.State == StateRestarting
}

// PortBinding is a container port published on the host.
type PortBinding struct {
	ContainerPort int
	Protocol      Protocol
	HostIP        string
	HostPort      int
}

// Stats is one measurement of a container.
type Stats struct {
	Time time.Time
	// CPUMillicores is the CPU used, averaged since the previous Stats call
	// for this container or over a short sampling interval.
	CPUMillicores float64
	// MemoryMB is the working set (usage minus inactive page cache).
	MemoryMB float64
	// MemoryLimitMB is the limit the engine enforces (the host's memory if none).
	MemoryLimitMB float64
	Pids          uint64
	// StorageMB = WritableLayerMB + the sum of VolumesMB.
	StorageMB       float64
	WritableLayerMB float64
	VolumesMB       map[string]float64
}

// LogOptions select which lines Logs returns.
type LogOptions struct {
	// Since keeps only lines at or after this time (zero: from the start).
	Since time.Time
	// Tail keeps only the last Tail lines (0: all).
	Tail int
	// Follow keeps the stream open for new lines until the container stops
	// or the context is cancelled.
	Follow bool
}

// Stream names the output a log line came from.
type Stream string

// Streams.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// LogLine is one line of a container's output, without its newline.
type LogLine struct {
	Time   time.Time
	Stream Stream
	Text   string
}

// LogStream yields log lines in order. Next returns io.EOF at the end (for a
// followed stream: when the container has stopped) and the context's error
// when it is cancelled.
type LogStream interface {
	Next() (LogLine, error)
	Close() error
}

// ExecResult is the outcome of Exec. Output is capped (see implementations).
type ExecResult struct {
	ExitCode int
	Stdout   []byte
	Stderr   []byte
}

// VolumeInfo describes a named volume.
type VolumeInfo struct {
	Name   string
	Labels map[string]string
}
