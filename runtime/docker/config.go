package docker

import (
	"maps"
	"slices"
	"strconv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"

	"github.com/atollhq/atoll/runtime"
)

// containerConfig is the part of a container that the image could also set.
func containerConfig(spec runtime.ContainerSpec) *container.Config {
	c := &container.Config{
		Image:        spec.Image,
		Labels:       maps.Clone(spec.Labels),
		ExposedPorts: nat.PortSet{},
	}
	if len(spec.Command) > 0 {
		c.Entrypoint = slices.Clone(spec.Command)
		// A new entrypoint must not inherit the image's CMD as arguments
		// (Kubernetes semantics): Args, even empty, are the arguments.
		c.Cmd = slices.Clone(spec.Args)
		if c.Cmd == nil {
			c.Cmd = []string{}
		}
	} else if len(spec.Args) > 0 {
		c.Cmd = slices.Clone(spec.Args)
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		c.Env = append(c.Env, k+"="+spec.Env[k])
	}
	for _, p := range spec.Ports {
		c.ExposedPorts[natPort(p)] = struct{}{}
	}
	return c
}

func natPort(p runtime.Port) nat.Port {
	proto := p.Protocol
	if proto == "" {
		proto = runtime.TCP
	}
	return nat.Port(strconv.Itoa(p.Number) + "/" + string(proto))
}

// hostConfig is where atoll's hardening lives; it is the same for every
// container and cannot be loosened by a spec.
func hostConfig(spec runtime.ContainerSpec, cfg Config, mounts []mount.Mount) *container.HostConfig {
	pids := spec.Limits.PidsLimit
	if pids == 0 {
		pids = cfg.DefaultPidsLimit
	}
	h := &container.HostConfig{
		Privileged:    false,
		CapDrop:       []string{"ALL"},
		CapAdd:        slices.Clone(cfg.CapAdd),
		SecurityOpt:   []string{"no-new-privileges:true"},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Resources: container.Resources{
			NanoCPUs:   spec.Limits.NanoCPUs(),
			Memory:     spec.Limits.MemoryBytes,
			MemorySwap: spec.Limits.MemoryBytes, // == Memory: no swap beyond the limit
			PidsLimit:  &pids,
		},
		LogConfig: container.LogConfig{
			Type: "json-file",
			Config: map[string]string{
				"max-size": cfg.LogMaxSize,
				"max-file": strconv.Itoa(cfg.LogMaxFiles),
			},
		},
		Mounts:       mounts,
		PortBindings: nat.PortMap{},
	}
	if cfg.LogMaxSize == "" {
		delete(h.LogConfig.Config, "max-size")
	}
	if cfg.Network != "" {
		h.NetworkMode = container.NetworkMode(cfg.Network)
	}
	for _, p := range spec.Ports {
		if !p.Publish {
			continue
		}
		ip := p.HostIP
		if ip == "" {
			ip = runtime.DefaultHostIP
		}
		hp := ""
		if p.HostPort != 0 {
			hp = strconv.Itoa(p.HostPort)
		}
		np := natPort(p)
		h.PortBindings[np] = append(h.PortBindings[np], nat.PortBinding{HostIP: ip, HostPort: hp})
	}
	return h
}

// volumeMounts turns the spec's named volumes into engine mounts.
func volumeMounts(spec runtime.ContainerSpec) []mount.Mount {
	var ms []mount.Mount
	for _, v := range spec.Volumes {
		ms = append(ms, mount.Mount{
			Type:     mount.TypeVolume,
			Source:   v.VolumeName,
			Target:   v.Path,
			ReadOnly: v.ReadOnly,
		})
	}
	return ms
}
