// Package docker implements runtime.Runtime on the Docker Engine API
// (github.com/docker/docker/client), for the atoll agent.
//
// Every container it creates is hardened the same way, whatever the spec
// says (see hostConfig): never privileged; all capabilities dropped except
// Config.CapAdd (by default CHOWN, SETUID, SETGID and NET_BIND_SERVICE, the
// minimal set that lets ordinary images start as root, drop to their own
// user and bind a port below 1024); no-new-privileges, so setuid binaries
// cannot raise privileges again; a pids limit; a memory limit with
// MemorySwap equal to it (no swap beyond the limit); NanoCPUs; restart
// policy "no" (the agent restarts with backoff itself); a bounded json-file
// log.
//
// Files of a ContainerSpec are written under Config.FilesDir, one fresh
// directory per created container, with the requested owner and mode, and
// bind-mounted read-only; Remove deletes them with the container. Owner
// names are looked up in the image's /etc/passwd and /etc/group, read once
// per image through a created-but-never-started "probe" container, which is
// removed even when the caller's context ends; RemoveStaleProbes removes the
// probes a process that died mid-lookup left behind (the agent calls it when
// it starts).
//
// Storage is measured, not enforced here: the writable layer (SizeRw) plus
// the bytes in the container's named volumes. Docker can only cap the
// writable layer on some storage drivers (not fuse-overlayfs, not overlay2
// without xfs project quotas), so the agent compares Stats.StorageMB with
// Limits.StorageMB.
//
// Engine notes (Docker 20.10, API 1.41, cgroup v1, fuse-overlayfs, as
// measured by the tests):
//
//   - One-shot stats are not instant: once the engine's stats collector
//     runs for a container, each call waits for its next 1 s tick. Stats
//     thus takes up to ~1 s (about 1 s without an earlier sample), so the
//     agent should query containers concurrently. CPU is computed from
//     cumulative usage between two samples; memory is the working set
//     (usage - total_inactive_file on cgroup v1, inactive_file on v2).
//   - The engine reports CapAdd normalized ("CAP_CHOWN") and sorted.
//   - A missing entrypoint makes Start fail with a "not found" error while
//     the container stays "created" with exit code 127 and State.Error.
//   - SizeRw works on fuse-overlayfs (the engine walks the upper dir); a
//     writable-layer quota (StorageOpt size) does not.
//
// This package must not decide anything: no restarts, no retries beyond
// what one call needs, no policy. That is the agent's job.
package docker
