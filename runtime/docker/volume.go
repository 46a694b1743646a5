package docker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"

	"github.com/atollhq/atoll/runtime"
)

// EnsureVolume creates a local named volume unless one with that name
// exists (whose labels are then left as they are).
func (r *Runtime) EnsureVolume(ctx context.Context, name string, labels map[string]string) error {
	if !validVolumeName(name) {
		return fmt.Errorf("%w: volume name %q", runtime.ErrInvalidSpec, name)
	}
	if _, err := r.cli.VolumeInspect(ctx, name); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect volume %q: %w", name, err)
	}
	if _, err := r.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: "local", Labels: maps.Clone(labels)}); err != nil {
		return fmt.Errorf("create volume %q: %w", name, err)
	}
	return nil
}

// RemoveVolume removes the volume and its data; an absent volume is fine,
// one still mounted by a container is ErrVolumeInUse.
func (r *Runtime) RemoveVolume(ctx context.Context, name string) error {
	err := r.cli.VolumeRemove(ctx, name, false)
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("remove volume %q: %w: %v", name, runtime.ErrVolumeInUse, err)
	}
	return fmt.Errorf("remove volume %q: %w", name, err)
}

// ListVolumes returns the named volumes whose labels include selector.
func (r *Runtime) ListVolumes(ctx context.Context, selector map[string]string) ([]runtime.VolumeInfo, error) {
	args := filters.NewArgs()
	for _, k := range slices.Sorted(maps.Keys(selector)) {
		args.Add("label", k+"="+selector[k])
	}
	resp, err := r.cli.VolumeList(ctx, volume.ListOptions{Filters: args})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []runtime.VolumeInfo
	for _, v := range resp.Volumes {
		if v != nil && runtime.MatchLabels(v.Labels, selector) {
			out = append(out, runtime.VolumeInfo{Name: v.Name, Labels: v.Labels})
		}
	}
	slices.SortFunc(out, func(a, b runtime.VolumeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// VolumeSizeMB measures the bytes stored in the volume: by walking its
// mountpoint when this process can read it (the agent runs beside the
// engine), else through the engine's disk-usage report, which is slower
// because it also measures images and containers.
func (r *Runtime) VolumeSizeMB(ctx context.Context, name string) (float64, error) {
	v, err := r.cli.VolumeInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		return 0, fmt.Errorf("%w: %q", runtime.ErrVolumeNotFound, name)
	} else if err != nil {
		return 0, fmt.Errorf("inspect volume %q: %w", name, err)
	}
	if v.Mountpoint != "" {
		if fi, err := os.Stat(v.Mountpoint); err == nil && fi.IsDir() {
			n, err := dirSize(ctx, v.Mountpoint)
			if err == nil {
				return float64(n) / runtime.MB, nil
			}
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			r.log.Debug("walking volume failed, asking the engine", "volume", name, "err", err)
		}
	}
	du, err := r.cli.DiskUsage(ctx, types.DiskUsageOptions{Types: []types.DiskUsageObject{types.VolumeObject}})
	if err != nil {
		return 0, fmt.Errorf("disk usage of volume %q: %w", name, err)
	}
	for _, dv := range du.Volumes {
		if dv != nil && dv.Name == name && dv.UsageData != nil && dv.UsageData.Size >= 0 {
			return float64(dv.UsageData.Size) / runtime.MB, nil
		}
	}
	return 0, fmt.Errorf("disk usage of volume %q: not reported by the engine", name)
}

// dirSize adds up the apparent sizes of the files under root, counting a
// hard-linked file once, like the engine's own measurement.
func dirSize(ctx context.Context, root string) (int64, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed while we walk
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += fi.Size()
		return nil
	})
	return total, err
}

func validVolumeName(name string) bool {
	if name == "" {
		return false
	}
	err := runtime.ContainerSpec{Image: "x", Volumes: []runtime.VolumeMount{{VolumeName: name, Path: "/v"}}}.Validate()
	return err == nil
}
