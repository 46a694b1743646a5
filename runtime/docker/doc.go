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
// per image through a created-but-never-started container.
//
// Storage is measured, not enforced here: the writable layer (SizeRw) plus
// the bytes in the container's named volumes. Docker can only cap the
// writable layer on some storage drivers (not fuse-overlayfs, not overlay2
// without xfs project quotas), so the agent compares Stats.StorageMB with
// Limits.StorageMB.
//
// This package must not decide anything: no restarts, no retries beyond
// what one call needs, no policy. That is the agent's job.
package docker
