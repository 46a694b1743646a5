// Package fake is an in-memory runtime.Runtime for unit tests of the agent
// and for scale simulations. It follows the same contract as runtime/docker
// (both pass runtime/runtimetest) and is deterministic: ids, host ports, IP
// addresses and timestamps come from counters and an injectable clock, and
// nothing sleeps or runs in the background. A container "runs" until it is
// stopped or a test makes it exit.
//
// Failures are injected, not scripted call by call: images that are missing
// or pullable, a Behavior per container name or image (print lines, exit
// with a code, get OOM-killed, fail to start), Exit and OOMKill on a running
// container, and FailNext for any operation.
package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atollhq/atoll/runtime"
)

// Op names a Runtime method, for FailNext.
type Op string

// Operations.
const (
	OpEnsureImage  Op = "EnsureImage"
	OpCreate       Op = "Create"
	OpStart        Op = "Start"
	OpStop         Op = "Stop"
	OpRemove       Op = "Remove"
	OpList         Op = "List"
	OpInspect      Op = "Inspect"
	OpStats        Op = "Stats"
	OpLogs         Op = "Logs"
	OpExec         Op = "Exec"
	OpEnsureVolume Op = "EnsureVolume"
	OpRemoveVolume Op = "RemoveVolume"
	OpListVolumes  Op = "ListVolumes"
	OpVolumeSize   Op = "VolumeSizeMB"
	OpRemoveProbes Op = "RemoveStaleProbes"
)

// Behavior is what a container does when it is started.
type Behavior struct {
	// Stdout and Stderr lines are logged at start (stdout first).
	Stdout, Stderr []string
	// Exit makes the container exit at once with ExitCode.
	Exit     bool
	ExitCode int
	// OOM makes the container get OOM-killed at once (exit code 137).
	OOM bool
	// StartError makes Start fail like a missing entrypoint: the container
	// stays created with exit code 127 and this error.
	StartError string
	// IgnoreSIGTERM makes Stop with a timeout end in a kill (exit code 137)
	// instead of a clean exit 0.
	IgnoreSIGTERM bool
}

// Usage is what Stats reports for a running container.
type Usage struct {
	CPUMillicores   float64
	MemoryMB        float64
	Pids            uint64
	WritableLayerMB float64 // reported whether running or not
}

// DefaultUsage is the usage of a running container nobody set one for.
var DefaultUsage = Usage{MemoryMB: 1, Pids: 1}

// File is a file mounted into a fake container, with its owner resolved.
type File struct {
	MountPath string
	Content   []byte
	UID, GID  int
	Mode      os.FileMode
}

// Image describes a fake image.
type Image struct {
	// Passwd and Group are the image's /etc/passwd and /etc/group (nil: none).
	Passwd, Group []byte
}

// Fake is the in-memory runtime. The zero value is not usable; call New.
type Fake struct {
	mu         sync.Mutex
	now        func() time.Time
	images     map[string]Image
	pullable   map[string]Image
	containers map[string]*ctr // by id
	names      map[string]string
	volumes    map[string]*vol
	behaviors  map[string]Behavior // by container name
	imageBeh   map[string]Behavior // by image ref
	failures   map[Op][]error
	probes     []map[string]string // labels of stale probes (LeaveProbe)
	nextID     int
	nextPort   int
	nextIP     int

	// ExecFunc answers Exec for running containers. The default runs
	// "echo ARGS..." (prints the arguments) and succeeds for anything else
	// with no output.
	ExecFunc func(id string, cmd []string) (runtime.ExecResult, error)
}

var (
	_ runtime.Runtime      = (*Fake)(nil)
	_ runtime.ProbeRemover = (*Fake)(nil)
)

type ctr struct {
	info    runtime.ContainerInfo // IPAddress and Ports only while running
	spec    runtime.ContainerSpec
	files   []File
	usage   *Usage
	logs    []runtime.LogLine
	changed chan struct{} // closed and replaced on every new line or state change
	removed bool
	ip      string
	ports   []runtime.PortBinding
}

type vol struct {
	info   runtime.VolumeInfo
	sizeMB float64
}

// Epoch is where the default clock starts.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// New returns an empty fake: no images, no containers, no volumes, and a
// clock that starts at Epoch and advances 1ms each time it is read.
func New() *Fake {
	var tick int64
	return &Fake{
		now: func() time.Time {
			tick++
			return Epoch.Add(time.Duration(tick) * time.Millisecond)
		},
		images:     map[string]Image{},
		pullable:   map[string]Image{},
		containers: map[string]*ctr{},
		names:      map[string]string{},
		volumes:    map[string]*vol{},
		behaviors:  map[string]Behavior{},
		imageBeh:   map[string]Behavior{},
		failures:   map[Op][]error{},
		nextPort:   32768,
		nextIP:     2,
	}
}

// SetClock replaces the clock (e.g. with a test's fake clock or time.Now).
func (f *Fake) SetClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// AddImage makes images present on the host.
func (f *Fake) AddImage(ref string, img ...Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[ref] = first(img)
}

// RemoveImage makes an image absent (containers created from it stay).
func (f *Fake) RemoveImage(ref string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.images, ref)
}

// AllowPull makes EnsureImage of an absent ref succeed by "pulling" it.
func (f *Fake) AllowPull(ref string, img ...Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pullable[ref] = first(img)
}

func first(img []Image) Image {
	if len(img) > 0 {
		return img[0]
	}
	return Image{}
}

// HasImage reports whether ref is present.
func (f *Fake) HasImage(ref string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.images[ref]
	return ok
}

// SetBehavior sets what containers named name do on every Start.
func (f *Fake) SetBehavior(name string, b Behavior) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.behaviors[name] = b
}

// SetImageBehavior sets what containers of image ref do on every Start,
// unless their name has a Behavior.
func (f *Fake) SetImageBehavior(ref string, b Behavior) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.imageBeh[ref] = b
}

// FailNext makes the next call of op return err (calls queue up in order).
func (f *Fake) FailNext(op Op, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[op] = append(f.failures[op], err)
}

// failure pops an injected error for op; f.mu must be held.
func (f *Fake) failure(op Op) error {
	q := f.failures[op]
	if len(q) == 0 {
		return nil
	}
	f.failures[op] = q[1:]
	return q[0]
}

// Exit makes a running container exit now with code (a crash, or a job
// finishing).
func (f *Fake) Exit(id string, code int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(id)
	if err != nil {
		return err
	}
	if !c.info.Running() {
		return fmt.Errorf("exit %s: %w", id, runtime.ErrNotRunning)
	}
	f.exit(c, code, false)
	return nil
}

// OOMKill makes a running container get killed for memory now.
func (f *Fake) OOMKill(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(id)
	if err != nil {
		return err
	}
	if !c.info.Running() {
		return fmt.Errorf("oom-kill %s: %w", id, runtime.ErrNotRunning)
	}
	f.exit(c, 137, true)
	return nil
}

// WriteLog appends a line to a container's output.
func (f *Fake) WriteLog(id string, stream runtime.Stream, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(id)
	if err != nil {
		return err
	}
	f.log(c, stream, text)
	return nil
}

// SetUsage sets what Stats reports for a container.
func (f *Fake) SetUsage(id string, u Usage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(id)
	if err != nil {
		return err
	}
	c.usage = &u
	return nil
}

// SetVolumeSizeMB sets the bytes stored in a volume.
func (f *Fake) SetVolumeSizeMB(name string, mb float64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.volumes[name]
	if !ok {
		return fmt.Errorf("%w: %q", runtime.ErrVolumeNotFound, name)
	}
	v.sizeMB = mb
	return nil
}

// Spec returns the spec a container was created from.
func (f *Fake) Spec(id string) (runtime.ContainerSpec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(id)
	if err != nil {
		return runtime.ContainerSpec{}, err
	}
	return c.spec, nil
}

// Files returns the files mounted into a container, owners resolved.
func (f *Fake) Files(id string) ([]File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(id)
	if err != nil {
		return nil, err
	}
	return slices.Clone(c.files), nil
}

// lookup finds a container by id or name; f.mu must be held.
func (f *Fake) lookup(idOrName string) (*ctr, error) {
	if c, ok := f.containers[idOrName]; ok {
		return c, nil
	}
	if id, ok := f.names[idOrName]; ok {
		return f.containers[id], nil
	}
	return nil, fmt.Errorf("%s: %w", idOrName, runtime.ErrNotFound)
}

func (f *Fake) notify(c *ctr) {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (f *Fake) log(c *ctr, stream runtime.Stream, text string) {
	c.logs = append(c.logs, runtime.LogLine{Time: f.now(), Stream: stream, Text: text})
	f.notify(c)
}

func (f *Fake) exit(c *ctr, code int, oom bool) {
	c.info.State = runtime.StateExited
	c.info.ExitCode = code
	c.info.OOMKilled = oom
	c.info.FinishedAt = f.now()
	c.info.IPAddress, c.info.Ports = "", nil
	f.notify(c)
}

// EnsureImage succeeds for present images, "pulls" pullable ones and
// reports the rest as not found.
func (f *Fake) EnsureImage(ctx context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpEnsureImage); err != nil {
		return err
	}
	if ref == "" {
		return fmt.Errorf("%w: empty image reference", runtime.ErrInvalidSpec)
	}
	if _, ok := f.images[ref]; ok {
		return nil
	}
	if img, ok := f.pullable[ref]; ok {
		f.images[ref] = img
		return nil
	}
	return runtime.ImageNotFound(ref, errors.New("fake: no registry has it"))
}

// Create checks the spec like the Docker runtime and records the container.
func (f *Fake) Create(ctx context.Context, spec runtime.ContainerSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpCreate); err != nil {
		return "", err
	}
	if err := spec.Validate(); err != nil {
		return "", err
	}
	img, ok := f.images[spec.Image]
	if !ok {
		return "", runtime.ImageNotFound(spec.Image, nil)
	}
	for _, v := range spec.Volumes {
		if _, ok := f.volumes[v.VolumeName]; !ok {
			return "", fmt.Errorf("%w: %q (mounted at %s)", runtime.ErrVolumeNotFound, v.VolumeName, v.Path)
		}
	}
	files := make([]File, 0, len(spec.Files))
	for i, fm := range spec.Files {
		o, err := runtime.ParseOwner(fm.Owner)
		if err != nil {
			return "", fmt.Errorf("files[%d]: %w", i, err)
		}
		uid, gid, err := o.Resolve(img.Passwd, img.Group)
		if err != nil {
			return "", fmt.Errorf("files[%d] (%s): owner %q of image %q: %w", i, fm.MountPath, fm.Owner, spec.Image, err)
		}
		content := fm.Content
		if fm.HostPath != "" {
			if content, err = os.ReadFile(fm.HostPath); err != nil {
				return "", fmt.Errorf("files[%d]: %w", i, err)
			}
		}
		mode := fm.Mode
		if mode == 0 {
			mode = runtime.DefaultFileMode
		}
		files = append(files, File{MountPath: fm.MountPath, Content: slices.Clone(content), UID: uid, GID: gid, Mode: mode})
	}
	f.nextID++
	id := fmt.Sprintf("%064x", f.nextID)
	name := spec.Name
	if name == "" {
		name = fmt.Sprintf("fake_%d", f.nextID)
	}
	if _, ok := f.names[name]; ok {
		return "", fmt.Errorf("%w: %q", runtime.ErrAlreadyExists, name)
	}
	spec = cloneSpec(spec)
	c := &ctr{
		info: runtime.ContainerInfo{
			ID:        id,
			Name:      name,
			Image:     spec.Image,
			Labels:    maps.Clone(spec.Labels),
			State:     runtime.StateCreated,
			CreatedAt: f.now(),
		},
		spec:    spec,
		files:   files,
		changed: make(chan struct{}),
	}
	if c.info.Labels == nil {
		c.info.Labels = map[string]string{}
	}
	// Host ports are chosen at create, like a fixed binding, and kept
	// across restarts: deterministic for tests.
	for _, p := range spec.Ports {
		if !p.Publish {
			continue
		}
		b := runtime.PortBinding{ContainerPort: p.Number, Protocol: p.Protocol, HostIP: p.HostIP, HostPort: p.HostPort}
		if b.Protocol == "" {
			b.Protocol = runtime.TCP
		}
		if b.HostIP == "" {
			b.HostIP = runtime.DefaultHostIP
		}
		if b.HostPort == 0 {
			b.HostPort = f.nextPort
			f.nextPort++
		}
		c.ports = append(c.ports, b)
	}
	slices.SortFunc(c.ports, func(a, b runtime.PortBinding) int { return a.ContainerPort - b.ContainerPort })
	f.containers[id] = c
	f.names[name] = id
	return id, nil
}

func cloneSpec(s runtime.ContainerSpec) runtime.ContainerSpec {
	s.Command = slices.Clone(s.Command)
	s.Args = slices.Clone(s.Args)
	s.Env = maps.Clone(s.Env)
	s.Files = slices.Clone(s.Files)
	s.Volumes = slices.Clone(s.Volumes)
	s.Ports = slices.Clone(s.Ports)
	s.Labels = maps.Clone(s.Labels)
	return s
}

// Start runs the container's Behavior: it is then running, or has exited.
func (f *Fake) Start(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpStart); err != nil {
		return err
	}
	c, err := f.lookup(id)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if c.info.Running() {
		return nil
	}
	b, ok := f.behaviors[c.info.Name]
	if !ok {
		b = f.imageBeh[c.info.Image]
	}
	if b.StartError != "" {
		c.info.ExitCode = 127
		c.info.Error = b.StartError
		f.notify(c)
		return fmt.Errorf("start %s: %s", id, b.StartError)
	}
	c.info.State = runtime.StateRunning
	c.info.ExitCode, c.info.OOMKilled, c.info.Error = 0, false, ""
	c.info.StartedAt = f.now()
	if c.ip == "" {
		c.ip = fmt.Sprintf("172.17.%d.%d", f.nextIP/250, f.nextIP%250+2)
		f.nextIP++
	}
	c.info.IPAddress = c.ip
	c.info.Ports = slices.Clone(c.ports)
	f.notify(c)
	for _, l := range b.Stdout {
		f.log(c, runtime.Stdout, l)
	}
	for _, l := range b.Stderr {
		f.log(c, runtime.Stderr, l)
	}
	switch {
	case b.OOM:
		f.exit(c, 137, true)
	case b.Exit:
		f.exit(c, b.ExitCode, false)
	}
	return nil
}

// Stop ends a running container: exit 0 if it "handles" SIGTERM within a
// non-zero timeout, else 137.
func (f *Fake) Stop(ctx context.Context, id string, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpStop); err != nil {
		return err
	}
	c, err := f.lookup(id)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if !c.info.Running() {
		return nil
	}
	b, ok := f.behaviors[c.info.Name]
	if !ok {
		b = f.imageBeh[c.info.Image]
	}
	code := 0
	if timeout <= 0 || b.IgnoreSIGTERM {
		code = 137
	}
	f.exit(c, code, false)
	return nil
}

// Remove forgets the container; an absent one is fine.
func (f *Fake) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpRemove); err != nil {
		return err
	}
	c, err := f.lookup(id)
	if err != nil {
		return nil
	}
	delete(f.containers, c.info.ID)
	delete(f.names, c.info.Name)
	c.removed = true
	f.notify(c)
	return nil
}

// List returns the summaries of the matching containers, sorted by name.
func (f *Fake) List(ctx context.Context, selector map[string]string) ([]runtime.ContainerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpList); err != nil {
		return nil, err
	}
	out := []runtime.ContainerInfo{}
	for _, c := range f.containers {
		if !runtime.MatchLabels(c.info.Labels, selector) {
			continue
		}
		i := c.info
		out = append(out, runtime.ContainerInfo{
			ID: i.ID, Name: i.Name, Image: i.Image, Labels: maps.Clone(i.Labels), State: i.State,
			CreatedAt: i.CreatedAt, IPAddress: i.IPAddress, Ports: slices.Clone(i.Ports),
		})
	}
	slices.SortFunc(out, func(a, b runtime.ContainerInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Inspect returns the container's full state.
func (f *Fake) Inspect(ctx context.Context, id string) (runtime.ContainerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpInspect); err != nil {
		return runtime.ContainerInfo{}, err
	}
	c, err := f.lookup(id)
	if err != nil {
		return runtime.ContainerInfo{}, fmt.Errorf("inspect: %w", err)
	}
	i := c.info
	i.Labels = maps.Clone(i.Labels)
	i.Ports = slices.Clone(i.Ports)
	return i, nil
}

// Stats reports the container's Usage (DefaultUsage if none was set) while
// running, and its storage always.
func (f *Fake) Stats(ctx context.Context, id string) (runtime.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpStats); err != nil {
		return runtime.Stats{}, err
	}
	c, err := f.lookup(id)
	if err != nil {
		return runtime.Stats{}, fmt.Errorf("stats: %w", err)
	}
	u := DefaultUsage
	if c.usage != nil {
		u = *c.usage
	}
	st := runtime.Stats{Time: f.now(), WritableLayerMB: u.WritableLayerMB, VolumesMB: map[string]float64{}}
	st.StorageMB = st.WritableLayerMB
	for _, v := range c.spec.Volumes {
		mb := f.volumes[v.VolumeName].sizeMB
		st.VolumesMB[v.VolumeName] = mb
		st.StorageMB += mb
	}
	if c.info.Running() {
		st.CPUMillicores, st.MemoryMB, st.Pids = u.CPUMillicores, u.MemoryMB, u.Pids
		st.MemoryLimitMB = float64(c.spec.Limits.MemoryBytes) / runtime.MB
	}
	return st, nil
}

// StorageUsedMB is the writable layer (from SetUsage) plus the volumes.
func (f *Fake) StorageUsedMB(ctx context.Context, id string) (float64, error) {
	st, err := f.Stats(ctx, id)
	return st.StorageMB, err
}

// Logs returns the container's lines; a followed stream waits for new lines
// until the container stops or is removed, or ctx ends.
func (f *Fake) Logs(ctx context.Context, id string, opts runtime.LogOptions) (runtime.LogStream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpLogs); err != nil {
		return nil, err
	}
	c, err := f.lookup(id)
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	// Like the engine: the last Tail lines, then those at or after Since.
	start := 0
	if opts.Tail > 0 {
		start = max(0, len(c.logs)-opts.Tail)
	}
	return &logStream{f: f, c: c, ctx: ctx, next: start, opts: opts}, nil
}

type logStream struct {
	f      *Fake
	c      *ctr
	ctx    context.Context
	next   int
	opts   runtime.LogOptions
	closed bool
}

func (s *logStream) Next() (runtime.LogLine, error) {
	for {
		if err := s.ctx.Err(); err != nil {
			return runtime.LogLine{}, err
		}
		s.f.mu.Lock()
		if s.closed {
			s.f.mu.Unlock()
			return runtime.LogLine{}, errors.New("log stream closed")
		}
		for s.next < len(s.c.logs) {
			l := s.c.logs[s.next]
			s.next++
			if !l.Time.Before(s.opts.Since) {
				s.f.mu.Unlock()
				return l, nil
			}
		}
		if !s.opts.Follow || !s.c.info.Running() || s.c.removed {
			s.f.mu.Unlock()
			return runtime.LogLine{}, io.EOF
		}
		changed := s.c.changed
		s.f.mu.Unlock()
		select {
		case <-changed:
		case <-s.ctx.Done():
			return runtime.LogLine{}, s.ctx.Err()
		}
	}
}

func (s *logStream) Close() error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.closed = true
	return nil
}

// Exec answers through ExecFunc in a running container.
func (f *Fake) Exec(ctx context.Context, id string, cmd []string) (runtime.ExecResult, error) {
	f.mu.Lock()
	if err := f.failure(OpExec); err != nil {
		f.mu.Unlock()
		return runtime.ExecResult{}, err
	}
	c, err := f.lookup(id)
	if err != nil {
		f.mu.Unlock()
		return runtime.ExecResult{}, fmt.Errorf("exec: %w", err)
	}
	if len(cmd) == 0 {
		f.mu.Unlock()
		return runtime.ExecResult{}, fmt.Errorf("%w: exec needs a command", runtime.ErrInvalidSpec)
	}
	if !c.info.Running() {
		f.mu.Unlock()
		return runtime.ExecResult{}, fmt.Errorf("exec %s: %w", id, runtime.ErrNotRunning)
	}
	fn, cid := f.ExecFunc, c.info.ID
	f.mu.Unlock()
	if fn != nil {
		return fn(cid, slices.Clone(cmd))
	}
	if cmd[0] == "echo" {
		return runtime.ExecResult{Stdout: []byte(strings.Join(cmd[1:], " ") + "\n")}, nil
	}
	return runtime.ExecResult{}, nil
}

// EnsureVolume creates the volume unless it exists.
func (f *Fake) EnsureVolume(ctx context.Context, name string, labels map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpEnsureVolume); err != nil {
		return err
	}
	if err := (runtime.ContainerSpec{Image: "x", Volumes: []runtime.VolumeMount{{VolumeName: name, Path: "/v"}}}).Validate(); err != nil {
		return fmt.Errorf("%w: volume name %q", runtime.ErrInvalidSpec, name)
	}
	if _, ok := f.volumes[name]; !ok {
		f.volumes[name] = &vol{info: runtime.VolumeInfo{Name: name, Labels: maps.Clone(labels)}}
	}
	return nil
}

// RemoveVolume removes an unused volume; an absent one is fine.
func (f *Fake) RemoveVolume(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpRemoveVolume); err != nil {
		return err
	}
	if _, ok := f.volumes[name]; !ok {
		return nil
	}
	for _, c := range f.containers {
		for _, v := range c.spec.Volumes {
			if v.VolumeName == name {
				return fmt.Errorf("remove volume %q: %w by container %s", name, runtime.ErrVolumeInUse, c.info.Name)
			}
		}
	}
	delete(f.volumes, name)
	return nil
}

// ListVolumes returns the matching volumes, sorted by name.
func (f *Fake) ListVolumes(ctx context.Context, selector map[string]string) ([]runtime.VolumeInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpListVolumes); err != nil {
		return nil, err
	}
	var out []runtime.VolumeInfo
	for _, v := range f.volumes {
		if runtime.MatchLabels(v.info.Labels, selector) {
			out = append(out, runtime.VolumeInfo{Name: v.info.Name, Labels: maps.Clone(v.info.Labels)})
		}
	}
	slices.SortFunc(out, func(a, b runtime.VolumeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// VolumeSizeMB returns what SetVolumeSizeMB set (0 for a new volume).
func (f *Fake) VolumeSizeMB(ctx context.Context, name string) (float64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpVolumeSize); err != nil {
		return 0, err
	}
	v, ok := f.volumes[name]
	if !ok {
		return 0, fmt.Errorf("%w: %q", runtime.ErrVolumeNotFound, name)
	}
	return v.sizeMB, nil
}

// LeaveProbe adds a stale probe container with labels, as a process that
// died mid-lookup leaves one behind. The fake makes no probes of its own (it
// resolves file owners from Image), so every probe is stale; List never
// shows them.
func (f *Fake) LeaveProbe(labels map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probes = append(f.probes, maps.Clone(labels))
}

// Probes returns the labels of the stale probes left.
func (f *Fake) Probes() []map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]map[string]string, len(f.probes))
	for i, p := range f.probes {
		out[i] = maps.Clone(p)
	}
	return out
}

// RemoveStaleProbes removes the probes whose labels include selector.
func (f *Fake) RemoveStaleProbes(ctx context.Context, selector map[string]string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(OpRemoveProbes); err != nil {
		return 0, err
	}
	n := len(f.probes)
	f.probes = slices.DeleteFunc(f.probes, func(l map[string]string) bool { return runtime.MatchLabels(l, selector) })
	return n - len(f.probes), nil
}
