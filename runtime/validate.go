package runtime

import (
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"strings"
)

var (
	containerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	volumeNameRE    = containerNameRE
)

// minMemoryBytes is the smallest memory limit Docker accepts.
const minMemoryBytes = 6 * MB

// Validate returns every problem of the spec at once, joined, each wrapping
// ErrInvalidSpec; nil if the spec can be handed to a runtime.
func (s ContainerSpec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidSpec}, args...)...))
	}
	if s.Name != "" && !containerNameRE.MatchString(s.Name) {
		bad("name %q: want letters, digits, '_', '.', '-', starting with a letter or digit", s.Name)
	}
	if s.Image == "" {
		bad("image is required")
	} else if strings.ContainsAny(s.Image, " \t\n") {
		bad("image %q contains blanks", s.Image)
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			bad("env name %q: must be non-empty and contain no '=' or NUL", k)
		}
	}
	mounts := map[string]bool{}
	mountPath := func(what, p string) {
		switch {
		case p == "" || !path.IsAbs(p):
			bad("%s: mount path %q must be absolute", what, p)
		case path.Clean(p) != p || p == "/":
			bad("%s: mount path %q must be clean and not /", what, p)
		case mounts[p]:
			bad("%s: mount path %q is used twice", what, p)
		}
		mounts[p] = true
	}
	for i, f := range s.Files {
		what := fmt.Sprintf("files[%d]", i)
		mountPath(what, f.MountPath)
		if f.HostPath != "" && f.Content != nil {
			bad("%s: set HostPath or Content, not both", what)
		}
		if f.HostPath != "" && !path.IsAbs(f.HostPath) {
			bad("%s: host path %q must be absolute", what, f.HostPath)
		}
		if f.Mode&^0o7777 != 0 {
			bad("%s: mode %v has bits beyond permissions", what, f.Mode)
		}
		if _, err := ParseOwner(f.Owner); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	for i, v := range s.Volumes {
		what := fmt.Sprintf("volumes[%d]", i)
		if !volumeNameRE.MatchString(v.VolumeName) {
			bad("%s: volume name %q is not valid", what, v.VolumeName)
		}
		mountPath(what, v.Path)
	}
	ports := map[string]bool{}
	hostPorts := map[string]bool{}
	for i, p := range s.Ports {
		what := fmt.Sprintf("ports[%d]", i)
		if p.Number < 1 || p.Number > 65535 {
			bad("%s: port %d out of range 1-65535", what, p.Number)
		}
		proto := p.Protocol
		if proto == "" {
			proto = TCP
		}
		if proto != TCP && proto != UDP {
			bad("%s: protocol %q: want tcp or udp", what, p.Protocol)
		}
		key := fmt.Sprintf("%d/%s", p.Number, proto)
		if ports[key] {
			bad("%s: port %s is listed twice", what, key)
		}
		ports[key] = true
		if p.HostPort < 0 || p.HostPort > 65535 {
			bad("%s: host port %d out of range 0-65535", what, p.HostPort)
		}
		if (p.HostPort != 0 || p.HostIP != "") && !p.Publish {
			bad("%s: host port or IP given without Publish", what)
		}
		if p.HostIP != "" && net.ParseIP(p.HostIP) == nil {
			bad("%s: host IP %q is not an IP address", what, p.HostIP)
		}
		if p.Publish && p.HostPort != 0 {
			ip := p.HostIP
			if ip == "" {
				ip = DefaultHostIP
			}
			hk := fmt.Sprintf("%s:%d/%s", ip, p.HostPort, proto)
			if hostPorts[hk] {
				bad("%s: host port %d/%s is published twice", what, p.HostPort, proto)
			}
			hostPorts[hk] = true
		}
	}
	l := s.Limits
	if l.MilliCPU < 0 {
		bad("limits: cpu %dm is negative", l.MilliCPU)
	}
	if l.MemoryBytes < 0 || (l.MemoryBytes > 0 && l.MemoryBytes < minMemoryBytes) {
		bad("limits: memory %d bytes: want 0 (no limit) or at least %d MB", l.MemoryBytes, minMemoryBytes/MB)
	}
	if l.PidsLimit < 0 {
		bad("limits: pids %d is negative", l.PidsLimit)
	}
	if l.StorageMB < 0 {
		bad("limits: storage %d MB is negative", l.StorageMB)
	}
	for k := range s.Labels {
		if k == "" {
			bad("labels: empty key")
		}
	}
	return errors.Join(errs...)
}

// MatchLabels reports whether labels include every key=value of selector.
func MatchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
