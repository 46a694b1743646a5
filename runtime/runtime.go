package runtime

import (
	"context"
	"time"
)

// Runtime runs containers on one host. It is the only way the agent touches
// the container engine. Every step is idempotent where the engine allows it,
// so a reconcile loop can repeat it safely:
//
//   - Start of a running container and Stop of a stopped one succeed.
//   - Remove and RemoveVolume of something absent succeed.
//   - EnsureImage and EnsureVolume succeed when the object is already there.
//
// Methods that take an id also accept the container's name. A missing
// container is reported as ErrNotFound by Start, Stop, Inspect, Stats, Logs
// and Exec.
type Runtime interface {
	// EnsureImage makes sure the image ref (name:tag) is on this host: it
	// returns at once if present, otherwise it pulls it within a bounded time.
	// Failure wraps ErrImageNotFound and names the image (see ImageNotFound).
	EnsureImage(ctx context.Context, ref string) error

	// Create creates (does not start) a container and returns its id. It
	// validates the spec first (ErrInvalidSpec, ErrUnknownOwner), needs the
	// image locally (ErrImageNotFound) and every named volume to exist
	// (ErrVolumeNotFound); a taken name is ErrAlreadyExists.
	Create(ctx context.Context, spec ContainerSpec) (string, error)
	// Start starts a created or exited container.
	Start(ctx context.Context, id string) error
	// Stop sends SIGTERM, waits up to timeout, then kills. timeout 0 kills at once.
	Stop(ctx context.Context, id string, timeout time.Duration) error
	// Remove force-removes the container with its anonymous volumes and the
	// files written for it. Named volumes are kept.
	Remove(ctx context.Context, id string) error

	// List returns the containers (running or not) whose labels include every
	// key=value of selector; an empty selector lists every container. List
	// fills the summary fields of ContainerInfo (see there); Inspect fills all.
	// The result is sorted by name.
	List(ctx context.Context, selector map[string]string) ([]ContainerInfo, error)
	// Inspect returns the full state of one container.
	Inspect(ctx context.Context, id string) (ContainerInfo, error)
	// Stats measures the container once: CPU, memory, pids (zero when not
	// running) and storage (writable layer + named volumes, always).
	Stats(ctx context.Context, id string) (Stats, error)
	// StorageUsedMB is Stats' storage measurement alone (writable layer +
	// named volumes), cheaper than Stats: what the agent compares with
	// Limits.StorageMB.
	StorageUsedMB(ctx context.Context, id string) (float64, error)
	// Logs returns the container's output as lines. The caller must Close
	// the stream.
	Logs(ctx context.Context, id string, opts LogOptions) (LogStream, error)
	// Exec runs cmd inside a running container (ErrNotRunning otherwise) and
	// waits for it.
	Exec(ctx context.Context, id string, cmd []string) (ExecResult, error)

	// EnsureVolume creates the named volume with labels unless it exists.
	EnsureVolume(ctx context.Context, name string, labels map[string]string) error
	// RemoveVolume removes a named volume and its data. A volume still
	// mounted by a container (even a stopped one) is ErrVolumeInUse.
	RemoveVolume(ctx context.Context, name string) error
	// ListVolumes returns the named volumes whose labels include selector.
	ListVolumes(ctx context.Context, selector map[string]string) ([]VolumeInfo, error)
	// VolumeSizeMB returns the bytes stored in a volume, in MB (2^20 bytes).
	VolumeSizeMB(ctx context.Context, name string) (float64, error)
}

// ProbeRemover is implemented by a Runtime that makes short-lived helper
// containers of its own ("probes"; the Docker runtime reads an image's
// /etc/passwd and /etc/group through one to resolve file owners). List never
// returns them. A probe is removed right after use, even when the caller's
// context ends; RemoveStaleProbes removes the ones a process that died
// mid-call, or a failed removal, left behind.
type ProbeRemover interface {
	// RemoveStaleProbes removes the probes whose labels include selector and
	// that no call of this runtime is using, and returns how many it removed.
	// Probes carry the labels of the container they were made for (less
	// LabelAlloc).
	RemoveStaleProbes(ctx context.Context, selector map[string]string) (int, error)
}
