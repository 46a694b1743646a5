package docker

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"

	"github.com/atollhq/atoll/runtime"
)

// writeFiles writes the spec's files into a fresh directory under
// Config.FilesDir and returns the read-only bind mounts for them and the
// directory (empty when there are no files). A fresh directory per Create
// means a second Create with a taken name never rewrites the files a running
// container already mounts.
func (r *Runtime) writeFiles(ctx context.Context, spec runtime.ContainerSpec, imageID string) (_ []mount.Mount, dir string, err error) {
	if len(spec.Files) == 0 {
		return nil, "", nil
	}
	type owned struct{ uid, gid int }
	owners := make([]owned, len(spec.Files))
	for i, f := range spec.Files {
		o, err := runtime.ParseOwner(f.Owner)
		if err != nil {
			return nil, "", fmt.Errorf("files[%d]: %w", i, err)
		}
		var db userDB
		if o.NeedsLookup() {
			if db, err = r.imageUserDB(ctx, imageID, spec.Labels); err != nil {
				return nil, "", fmt.Errorf("files[%d]: reading users of image %q: %w", i, spec.Image, err)
			}
		}
		uid, gid, err := o.Resolve(db.passwd, db.group)
		if err != nil {
			return nil, "", fmt.Errorf("files[%d] (%s): owner %q of image %q: %w", i, f.MountPath, f.Owner, spec.Image, err)
		}
		owners[i] = owned{uid, gid}
	}

	prefix := spec.Name
	if prefix == "" {
		prefix = "unnamed"
	}
	dir = filepath.Join(r.cfg.FilesDir, prefix+"-"+randomHex(6))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("files: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
			dir = ""
		}
	}()
	var mounts []mount.Mount
	for i, f := range spec.Files {
		content := f.Content
		if f.HostPath != "" {
			if content, err = os.ReadFile(f.HostPath); err != nil {
				return nil, "", fmt.Errorf("files[%d]: %w", i, err)
			}
		}
		mode := f.Mode
		if mode == 0 {
			mode = runtime.DefaultFileMode
		}
		p := filepath.Join(dir, fmt.Sprintf("%02d-%s", i, path.Base(f.MountPath)))
		if err := writeOwnedFile(p, content, mode, owners[i].uid, owners[i].gid); err != nil {
			return nil, "", fmt.Errorf("files[%d] (%s): %w", i, f.MountPath, err)
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: p, Target: f.MountPath, ReadOnly: true})
	}
	return mounts, dir, nil
}

func writeOwnedFile(p string, content []byte, mode os.FileMode, uid, gid int) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Chown(uid, gid); err != nil && !(os.Getuid() == uid && os.Getgid() == gid) {
		f.Close()
		return fmt.Errorf("chown %d:%d (the agent must run as root to set file owners): %w", uid, gid, err)
	}
	// Chmod after Chown: chown clears setuid/setgid bits.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// filesDirsOf returns the directories under Config.FilesDir that a
// container's bind mounts come from.
func (r *Runtime) filesDirsOf(mounts []container.MountPoint) []string {
	root := filepath.Clean(r.cfg.FilesDir) + string(filepath.Separator)
	seen := map[string]bool{}
	var dirs []string
	for _, m := range mounts {
		if m.Type != mount.TypeBind || !strings.HasPrefix(m.Source, root) {
			continue
		}
		rel := strings.TrimPrefix(m.Source, root)
		first, _, _ := strings.Cut(rel, string(filepath.Separator))
		if first == "" || first == ".." || seen[first] {
			continue
		}
		seen[first] = true
		dirs = append(dirs, filepath.Join(root, first))
	}
	return dirs
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// userDB is an image's /etc/passwd and /etc/group (nil when absent).
type userDB struct{ passwd, group []byte }

// probeLabel marks the short-lived containers used to read image files
// ("probes"); its value is the session of the Runtime that made the probe.
// A probe is never started, so AutoRemove cannot help: it is removed right
// after use, and RemoveStaleProbes removes the ones a process that died
// mid-lookup (or a failed removal) left behind.
const probeLabel = "atoll.runtime.probe"

// probeTimeout bounds the creation and the removal of one probe.
const probeTimeout = 30 * time.Second

// imageUserDB reads /etc/passwd and /etc/group from the image through a
// container that is created, never started, and removed. Results are cached
// per image id (an image's content never changes). The probe carries labels
// (those of the container it is for, less runtime.LabelAlloc: it is no
// instance), so that RemoveStaleProbes with the agent's selector finds it.
func (r *Runtime) imageUserDB(ctx context.Context, imageID string, labels map[string]string) (userDB, error) {
	r.mu.Lock()
	db, ok := r.userDBs[imageID]
	r.mu.Unlock()
	if ok {
		return db, nil
	}
	if err := ctx.Err(); err != nil {
		return userDB{}, err
	}
	// The probe is named before it exists and marked in use until its
	// removal returns: removal needs no id from the engine, and
	// RemoveStaleProbes leaves it alone meanwhile.
	name := "atoll-probe-" + r.session + "-" + randomHex(4)
	r.mu.Lock()
	r.probes[name] = struct{}{}
	r.mu.Unlock()
	defer func() {
		// Not the caller's context: the probe must go even if it was cancelled.
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
		defer cancel()
		if err := r.cli.ContainerRemove(rmCtx, name, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			r.log.Warn("removing probe container failed; RemoveStaleProbes will retry", "name", name, "err", err)
		}
		r.mu.Lock()
		delete(r.probes, name)
		r.mu.Unlock()
	}()
	probeLabels := maps.Clone(labels)
	if probeLabels == nil {
		probeLabels = map[string]string{}
	}
	delete(probeLabels, runtime.LabelAlloc)
	probeLabels[probeLabel] = r.session
	// Nor for the create: the engine may still create a container whose
	// request the caller abandoned, after the removal above found nothing.
	// Waiting for the answer (a create is quick) closes that gap.
	createCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
	resp, err := r.cli.ContainerCreate(createCtx,
		&container.Config{
			Image:           imageID,
			Entrypoint:      []string{"/atoll-probe-never-started"},
			Cmd:             []string{},
			Labels:          probeLabels,
			NetworkDisabled: true,
		},
		&container.HostConfig{NetworkMode: "none", CapDrop: []string{"ALL"}},
		&network.NetworkingConfig{}, nil, name)
	cancel()
	if err != nil {
		return userDB{}, fmt.Errorf("create probe container: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return userDB{}, err
	}
	if db.passwd, err = r.copyFileFrom(ctx, resp.ID, "/etc/passwd"); err != nil {
		return userDB{}, err
	}
	if db.group, err = r.copyFileFrom(ctx, resp.ID, "/etc/group"); err != nil {
		return userDB{}, err
	}
	r.mu.Lock()
	r.userDBs[imageID] = db
	r.mu.Unlock()
	return db, nil
}

// RemoveStaleProbes removes the probe containers whose labels include
// selector and that no call of this Runtime is using: those left by a
// process that died (or whose context ended) mid-lookup, or whose removal
// failed. It returns how many it removed. The agent calls it when it starts
// and after every adoption pass, with its ContainerLabels; one agent owns the
// containers of its selector on an engine, so a probe of another Runtime
// there belongs to a process that is gone.
func (r *Runtime) RemoveStaleProbes(ctx context.Context, selector map[string]string) (int, error) {
	args := filters.NewArgs(filters.Arg("label", probeLabel))
	for _, k := range slices.Sorted(maps.Keys(selector)) {
		args.Add("label", k+"="+selector[k])
	}
	cs, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return 0, fmt.Errorf("list probe containers: %w", err)
	}
	removed := 0
	var errs []error
	for _, c := range cs {
		if c.Labels[probeLabel] == "" || !runtime.MatchLabels(c.Labels, selector) {
			continue
		}
		name := c.ID
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		r.mu.Lock()
		_, inUse := r.probes[name]
		r.mu.Unlock()
		if inUse {
			continue
		}
		err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		switch {
		case err == nil:
			removed++
			r.log.Debug("removed a stale probe container", "name", name)
		case cerrdefs.IsNotFound(err):
		default:
			errs = append(errs, fmt.Errorf("remove probe container %s: %w", name, err))
		}
	}
	return removed, errors.Join(errs...)
}

// copyFileFrom returns a small regular file from a container's filesystem,
// following one level of symlink; nil if it does not exist.
func (r *Runtime) copyFileFrom(ctx context.Context, id, p string) ([]byte, error) {
	for hop := 0; hop < 4; hop++ {
		rc, _, err := r.cli.CopyFromContainer(ctx, id, p)
		if cerrdefs.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("copy %s: %w", p, err)
		}
		tr := tar.NewReader(rc)
		hdr, err := tr.Next()
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("copy %s: %w", p, err)
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(io.LimitReader(tr, 4<<20))
			rc.Close()
			if err != nil {
				return nil, fmt.Errorf("copy %s: %w", p, err)
			}
			return b, nil
		case tar.TypeSymlink:
			rc.Close()
			target := hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(p), target)
			}
			p = target
		default:
			rc.Close()
			return nil, errors.New("copy " + p + ": not a regular file")
		}
	}
	return nil, fmt.Errorf("copy %s: too many symlinks", p)
}
