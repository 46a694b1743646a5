package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/atollhq/atoll/runtime"
)

// Create validates the spec, checks the image and volumes, writes the
// files and creates the hardened container (see hostConfig).
func (r *Runtime) Create(ctx context.Context, spec runtime.ContainerSpec) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", err
	}
	img, err := r.cli.ImageInspect(ctx, spec.Image)
	if cerrdefs.IsNotFound(err) {
		return "", runtime.ImageNotFound(spec.Image, nil)
	} else if err != nil {
		return "", fmt.Errorf("inspect image %q: %w", spec.Image, err)
	}
	for _, v := range spec.Volumes {
		// The engine would silently create a missing volume, empty: a lost
		// volume must be the agent's decision, not a surprise.
		if _, err := r.cli.VolumeInspect(ctx, v.VolumeName); cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("%w: %q (mounted at %s)", runtime.ErrVolumeNotFound, v.VolumeName, v.Path)
		} else if err != nil {
			return "", fmt.Errorf("inspect volume %q: %w", v.VolumeName, err)
		}
	}
	fileMounts, dir, err := r.writeFiles(ctx, spec, img.ID)
	if err != nil {
		return "", err
	}
	mounts := append(fileMounts, volumeMounts(spec)...)
	resp, err := r.cli.ContainerCreate(ctx, containerConfig(spec), hostConfig(spec, r.cfg, mounts), &network.NetworkingConfig{}, nil, spec.Name)
	if err != nil {
		if dir != "" {
			os.RemoveAll(dir)
		}
		switch {
		case cerrdefs.IsConflict(err):
			return "", fmt.Errorf("%w: %q: %v", runtime.ErrAlreadyExists, spec.Name, err)
		case cerrdefs.IsNotFound(err) && strings.Contains(strings.ToLower(err.Error()), "image"):
			return "", runtime.ImageNotFound(spec.Image, nil)
		case cerrdefs.IsInvalidArgument(err):
			return "", fmt.Errorf("%w: %v", runtime.ErrInvalidSpec, err)
		}
		return "", fmt.Errorf("create container %q: %w", spec.Name, err)
	}
	for _, w := range resp.Warnings {
		r.log.Warn("docker create warning", "container", spec.Name, "warning", w)
	}
	return resp.ID, nil
}

// Start starts the container; starting a running one is a no-op.
func (r *Runtime) Start(ctx context.Context, id string) error {
	if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		// The engine also answers "not found" when the entrypoint is missing
		// from the image; only a missing container is ErrNotFound.
		if cerrdefs.IsNotFound(err) {
			if _, ierr := r.cli.ContainerInspect(ctx, id); ierr == nil {
				return fmt.Errorf("start %s: %w", id, err)
			}
		}
		return containerErr("start", id, err)
	}
	return nil
}

// Stop stops the container, killing it after timeout; stopping a stopped
// one is a no-op.
func (r *Runtime) Stop(ctx context.Context, id string, timeout time.Duration) error {
	secs := int(math.Ceil(max(timeout, 0).Seconds()))
	if err := r.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil {
		return containerErr("stop", id, err)
	}
	return nil
}

// Remove force-removes the container, its anonymous volumes and its files.
// Removing an absent container succeeds.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	c, err := r.cli.ContainerInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return containerErr("remove", id, err)
	}
	if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return containerErr("remove", id, err)
	}
	var errs []error
	for _, dir := range r.filesDirsOf(c.Mounts) {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove files of %s: %w", id, err))
		}
	}
	r.mu.Lock()
	delete(r.cpu, c.ID)
	r.mu.Unlock()
	return errors.Join(errs...)
}

// List returns the containers whose labels include selector.
func (r *Runtime) List(ctx context.Context, selector map[string]string) ([]runtime.ContainerInfo, error) {
	args := filters.NewArgs()
	for _, k := range slices.Sorted(maps.Keys(selector)) {
		args.Add("label", k+"="+selector[k])
	}
	cs, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]runtime.ContainerInfo, 0, len(cs))
	for _, c := range cs {
		// The engine matches "k=" as "label k has value ''"; check exactly.
		if !runtime.MatchLabels(c.Labels, selector) || c.Labels[probeLabel] != "" {
			continue
		}
		info := runtime.ContainerInfo{
			ID:        c.ID,
			Image:     c.Image,
			Labels:    c.Labels,
			State:     runtime.State(c.State),
			CreatedAt: time.Unix(c.Created, 0).UTC(),
		}
		if len(c.Names) > 0 {
			info.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		for _, p := range c.Ports {
			if p.PublicPort != 0 {
				info.Ports = append(info.Ports, runtime.PortBinding{
					ContainerPort: int(p.PrivatePort), Protocol: runtime.Protocol(p.Type),
					HostIP: p.IP, HostPort: int(p.PublicPort),
				})
			}
		}
		sortPorts(info.Ports)
		if c.NetworkSettings != nil {
			info.IPAddress = firstIP(c.NetworkSettings.Networks)
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b runtime.ContainerInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Inspect returns the container's full state.
func (r *Runtime) Inspect(ctx context.Context, id string) (runtime.ContainerInfo, error) {
	c, err := r.cli.ContainerInspect(ctx, id)
	if err != nil {
		return runtime.ContainerInfo{}, containerErr("inspect", id, err)
	}
	return inspectInfo(c), nil
}

func inspectInfo(c container.InspectResponse) runtime.ContainerInfo {
	info := runtime.ContainerInfo{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/")}
	if c.Config != nil {
		info.Image = c.Config.Image
		info.Labels = c.Config.Labels
	}
	info.CreatedAt = parseTime(c.Created)
	if s := c.State; s != nil {
		info.State = runtime.State(s.Status)
		info.ExitCode = s.ExitCode
		info.OOMKilled = s.OOMKilled
		info.Error = s.Error
		info.StartedAt = parseTime(s.StartedAt)
		info.FinishedAt = parseTime(s.FinishedAt)
		// The engine stamps start and finish from different places; a
		// container that exits at once can show finishing a millisecond
		// before it started. It did not: run time is never negative.
		if !info.FinishedAt.IsZero() && info.FinishedAt.Before(info.StartedAt) {
			info.FinishedAt = info.StartedAt
		}
	}
	if ns := c.NetworkSettings; ns != nil {
		info.IPAddress = firstIP(ns.Networks)
		info.Ports = portBindings(ns.Ports)
	}
	return info
}

func portBindings(pm nat.PortMap) []runtime.PortBinding {
	var out []runtime.PortBinding
	for p, bs := range pm {
		for _, b := range bs {
			hp, err := strconv.Atoi(b.HostPort)
			if err != nil || hp == 0 {
				continue
			}
			out = append(out, runtime.PortBinding{
				ContainerPort: p.Int(), Protocol: runtime.Protocol(p.Proto()),
				HostIP: b.HostIP, HostPort: hp,
			})
		}
	}
	sortPorts(out)
	return out
}

func sortPorts(ps []runtime.PortBinding) {
	slices.SortFunc(ps, func(a, b runtime.PortBinding) int {
		if a.ContainerPort != b.ContainerPort {
			return a.ContainerPort - b.ContainerPort
		}
		if a.Protocol != b.Protocol {
			return strings.Compare(string(a.Protocol), string(b.Protocol))
		}
		if a.HostIP != b.HostIP {
			return strings.Compare(a.HostIP, b.HostIP)
		}
		return a.HostPort - b.HostPort
	})
}

func firstIP(nets map[string]*network.EndpointSettings) string {
	for _, name := range slices.Sorted(maps.Keys(nets)) {
		if n := nets[name]; n != nil && n.IPAddress != "" {
			return n.IPAddress
		}
	}
	return ""
}

// parseTime parses the engine's RFC 3339 times; its "never" (year 1) and
// anything unparsable become the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t.UTC()
}

// containerErr maps engine errors about one container onto the sentinels.
func containerErr(op, id string, err error) error {
	switch {
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%s %s: %w", op, id, runtime.ErrNotFound)
	case cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "is not running"):
		return fmt.Errorf("%s %s: %w", op, id, runtime.ErrNotRunning)
	}
	return fmt.Errorf("%s %s: %w", op, id, err)
}
