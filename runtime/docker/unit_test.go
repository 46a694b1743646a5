package docker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/runtime"
)

// Tests in this file need no engine.

func frame(stream byte, payload string) []byte {
	hdr := make([]byte, 8)
	hdr[0] = stream
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(payload)))
	return append(hdr, payload...)
}

func readAll(t *testing.T, s runtime.LogStream) ([]runtime.LogLine, error) {
	t.Helper()
	var out []runtime.LogLine
	for {
		l, err := s.Next()
		if err != nil {
			return out, err
		}
		out = append(out, l)
	}
}

func TestLogStreamDemux(t *testing.T) {
	var b bytes.Buffer
	b.Write(frame(1, "2026-01-02T03:04:05.123456789Z first line\n"))
	b.Write(frame(2, "2026-01-02T03:04:06Z oops\r\n"))
	b.Write(frame(1, "2026-01-02T03:04:07Z part one, "))    // partial message...
	b.Write(frame(2, "2026-01-02T03:04:07Z err between\n")) // ...interleaved with stderr
	b.Write(frame(1, "2026-01-02T03:04:08Z part two\n"))    // ...completed
	b.Write(frame(1, "2026-01-02T03:04:09Z a\nb\n"))        // two lines in one frame
	b.Write(frame(1, "2026-01-02T03:04:10Z \n"))            // an empty line
	b.Write(frame(2, "2026-01-02T03:04:11Z no newline at end"))
	lines, err := readAll(t, newLogStream(context.Background(), io.NopCloser(&b), false))
	if err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
	want := []runtime.LogLine{
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), Stream: runtime.Stdout, Text: "first line"},
		{Time: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC), Stream: runtime.Stderr, Text: "oops"},
		{Time: time.Date(2026, 1, 2, 3, 4, 7, 0, time.UTC), Stream: runtime.Stderr, Text: "err between"},
		{Time: time.Date(2026, 1, 2, 3, 4, 7, 0, time.UTC), Stream: runtime.Stdout, Text: "part one, part two"},
		{Time: time.Date(2026, 1, 2, 3, 4, 9, 0, time.UTC), Stream: runtime.Stdout, Text: "a"},
		{Time: time.Date(2026, 1, 2, 3, 4, 9, 0, time.UTC), Stream: runtime.Stdout, Text: "b"},
		{Time: time.Date(2026, 1, 2, 3, 4, 10, 0, time.UTC), Stream: runtime.Stdout, Text: ""},
		{Time: time.Date(2026, 1, 2, 3, 4, 11, 0, time.UTC), Stream: runtime.Stderr, Text: "no newline at end"},
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("got\n%v\nwant\n%v", lines, want)
	}
}

func TestLogStreamErrors(t *testing.T) {
	bad := bytes.NewReader(frame(7, "x"))
	if _, err := readAll(t, newLogStream(context.Background(), io.NopCloser(bad), false)); err == nil || err == io.EOF {
		t.Fatalf("bad stream id: err = %v", err)
	}
	trunc := bytes.NewReader(frame(1, "2026-01-02T03:04:05Z hello\n")[:12])
	if _, err := readAll(t, newLogStream(context.Background(), io.NopCloser(trunc), false)); err == nil || err == io.EOF {
		t.Fatalf("truncated frame: err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := readAll(t, newLogStream(ctx, io.NopCloser(strings.NewReader("")), false)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v", err)
	}
	tty := strings.NewReader("2026-01-02T03:04:05Z one\n2026-01-02T03:04:06Z two")
	lines, err := readAll(t, newLogStream(context.Background(), io.NopCloser(tty), true))
	if err != io.EOF || len(lines) != 2 || lines[1].Text != "two" {
		t.Fatalf("tty: %v, %v", lines, err)
	}
}

func TestHostConfigHardening(t *testing.T) {
	spec := runtime.ContainerSpec{
		Image:  "x:1",
		Limits: runtime.Limits{MilliCPU: 250, MemoryBytes: 64 * runtime.MB},
		Ports:  []runtime.Port{{Number: 8080, Publish: true}, {Number: 53, Protocol: runtime.UDP, Publish: true, HostIP: "0.0.0.0", HostPort: 5353}, {Number: 9000}},
	}
	h := hostConfig(spec, DefaultConfig(), []mount.Mount{{Type: mount.TypeBind, Source: "/a", Target: "/b", ReadOnly: true}})
	if h.Privileged || !slices.Equal(h.CapDrop, []string{"ALL"}) || !slices.Equal(h.CapAdd, DefaultCapAdd) {
		t.Fatalf("privileges: %+v %v %v", h.Privileged, h.CapDrop, h.CapAdd)
	}
	if !slices.Equal(h.SecurityOpt, []string{"no-new-privileges:true"}) {
		t.Fatalf("SecurityOpt = %v", h.SecurityOpt)
	}
	if h.NanoCPUs != 250_000_000 || h.Memory != 64<<20 || h.MemorySwap != h.Memory || *h.PidsLimit != runtime.DefaultPidsLimit {
		t.Fatalf("resources: %+v", h.Resources)
	}
	if h.RestartPolicy.Name != container.RestartPolicyDisabled {
		t.Fatalf("restart policy %v", h.RestartPolicy)
	}
	if b := h.PortBindings["8080/tcp"]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != "" {
		t.Fatalf("8080 binding %v", b)
	}
	if b := h.PortBindings["53/udp"]; len(b) != 1 || b[0].HostIP != "0.0.0.0" || b[0].HostPort != "5353" {
		t.Fatalf("53 binding %v", b)
	}
	if _, ok := h.PortBindings["9000/tcp"]; ok {
		t.Fatal("unpublished port is bound")
	}
	c := containerConfig(spec)
	if _, ok := c.ExposedPorts["9000/tcp"]; !ok {
		t.Fatal("9000 not exposed")
	}

	spec.Limits.PidsLimit = 7
	if h := hostConfig(spec, DefaultConfig(), nil); *h.PidsLimit != 7 {
		t.Fatalf("PidsLimit = %d", *h.PidsLimit)
	}
}

func TestContainerConfigCommandArgsEnv(t *testing.T) {
	c := containerConfig(runtime.ContainerSpec{Image: "x", Command: []string{"/bin/sh"}, Env: map[string]string{"B": "2", "A": "1=1"}})
	if !slices.Equal(c.Entrypoint, []string{"/bin/sh"}) || c.Cmd == nil || len(c.Cmd) != 0 {
		t.Fatalf("command only: %q %q", c.Entrypoint, c.Cmd)
	}
	if !slices.Equal(c.Env, []string{"A=1=1", "B=2"}) {
		t.Fatalf("env %q", c.Env)
	}
	c = containerConfig(runtime.ContainerSpec{Image: "x", Args: []string{"-v"}})
	if c.Entrypoint != nil || !slices.Equal(c.Cmd, []string{"-v"}) {
		t.Fatalf("args only: %q %q", c.Entrypoint, c.Cmd)
	}
}

func TestCPUMillicores(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		prev, cur cpuSample
		want      float64
	}{
		{cpuSample{read: t0, usageNS: 0}, cpuSample{read: t0.Add(time.Second), usageNS: 500_000_000}, 500},
		{cpuSample{read: t0, usageNS: 1e9}, cpuSample{read: t0.Add(2 * time.Second), usageNS: 5e9}, 2000},
		{cpuSample{read: t0, usageNS: 5}, cpuSample{read: t0, usageNS: 10}, 0},                  // no wall time
		{cpuSample{read: t0, usageNS: 10}, cpuSample{read: t0.Add(time.Second), usageNS: 5}, 0}, // counter reset
	} {
		if got := cpuMillicores(tc.prev, tc.cur); got != tc.want {
			t.Errorf("cpuMillicores(%v, %v) = %v, want %v", tc.prev, tc.cur, got, tc.want)
		}
	}
}

func TestWorkingSet(t *testing.T) {
	v1 := container.MemoryStats{Usage: 100, Stats: map[string]uint64{"total_inactive_file": 30, "inactive_file": 99}}
	v2 := container.MemoryStats{Usage: 100, Stats: map[string]uint64{"inactive_file": 40}}
	odd := container.MemoryStats{Usage: 10, Stats: map[string]uint64{"total_inactive_file": 30}}
	if workingSet(v1) != 70 || workingSet(v2) != 60 || workingSet(odd) != 10 {
		t.Fatalf("%d %d %d", workingSet(v1), workingSet(v2), workingSet(odd))
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	err := Config{FilesDir: "rel"}.Validate()
	for _, want := range []string{"FilesDir", "PullTimeout", "PullStallTimeout", "DefaultPidsLimit", "LogMaxFiles", "StatsSampleInterval", "ExecOutputLimit"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s in %v", want, err)
		}
	}
}

func TestFilesDirsOf(t *testing.T) {
	r := &Runtime{cfg: Config{FilesDir: "/data/files"}}
	got := r.filesDirsOf([]container.MountPoint{
		{Type: mount.TypeBind, Source: "/data/files/web-1-abc/00-app.conf"},
		{Type: mount.TypeBind, Source: "/data/files/web-1-abc/01-other"},
		{Type: mount.TypeBind, Source: "/data/filesX/evil"},
		{Type: mount.TypeBind, Source: "/etc/passwd"},
		{Type: mount.TypeVolume, Name: "v", Source: "/data/files/v"},
	})
	if !slices.Equal(got, []string{"/data/files/web-1-abc"}) {
		t.Fatalf("got %q", got)
	}
}

// stubClient answers the image calls of EnsureImage; every other method
// panics (nil embedded interface), so the test shows what EnsureImage uses.
type stubClient struct {
	client.APIClient
	pull func(ctx context.Context) (io.ReadCloser, error)
}

func (stubClient) ImageInspect(ctx context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	return image.InspectResponse{}, fmt.Errorf("no such image: %s: %w", ref, cerrdefs.ErrNotFound)
}

func (s stubClient) ImagePull(ctx context.Context, ref string, _ image.PullOptions) (io.ReadCloser, error) {
	return s.pull(ctx)
}

func TestEnsureImageGivesUpOnAStalledPull(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FilesDir = t.TempDir()
	cfg.PullStallTimeout = 200 * time.Millisecond
	// The engine accepted the pull, sent one progress line, then nothing.
	stalled := stubClient{pull: func(ctx context.Context) (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go pw.Write([]byte(`{"status":"Pulling from library/hello"}` + "\n"))
		return pr, nil
	}}
	r, err := NewWithClient(stalled, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = r.EnsureImage(context.Background(), "hello:2")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	if !errors.Is(err, runtime.ErrImageNotFound) || err.Error() != `image "hello:2" not found on this host and could not be pulled: pull made no progress for 200ms` {
		t.Fatalf("err = %v", err)
	}

	// The engine reports a failure inside a 200 response.
	failing := stubClient{pull: func(ctx context.Context) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(`{"status":"Pulling"}` + "\n" + `{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}`)), nil
	}}
	r, _ = NewWithClient(failing, cfg)
	if err := r.EnsureImage(context.Background(), "hello:2"); !errors.Is(err, runtime.ErrImageNotFound) || !strings.HasSuffix(err.Error(), ": manifest unknown") {
		t.Fatalf("err = %v", err)
	}

	// A caller that gives up gets its own context error, not "not found".
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r, _ = NewWithClient(stalled, cfg)
	if err := r.EnsureImage(ctx, "hello:2"); errors.Is(err, runtime.ErrImageNotFound) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

// probeStub answers the container calls of an owner lookup like an engine
// that creates a container even when the caller gives up on the request.
type probeStub struct {
	client.APIClient
	creating, release chan struct{} // when set, ContainerCreate signals and waits

	mu         sync.Mutex
	createCtx  error                        // the create context's error when it answered
	created    map[string]map[string]string // name -> labels
	removed    []string
	removeErr  error
	containers []container.Summary
}

func (s *probeStub) ContainerCreate(ctx context.Context, cfg *container.Config, _ *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	if s.creating != nil {
		close(s.creating)
		<-s.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created[name] = cfg.Labels // the engine got the request: the container exists
	s.createCtx = ctx.Err()
	if err := ctx.Err(); err != nil {
		return container.CreateResponse{}, err
	}
	return container.CreateResponse{ID: "id-" + name}, nil
}

func (s *probeStub) CopyFromContainer(ctx context.Context, id, p string) (io.ReadCloser, container.PathStat, error) {
	return nil, container.PathStat{}, fmt.Errorf("no such file %s: %w", p, cerrdefs.ErrNotFound)
}

func (s *probeStub) ContainerRemove(ctx context.Context, id string, _ container.RemoveOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removed = append(s.removed, id)
	return s.removeErr
}

func (s *probeStub) ContainerList(ctx context.Context, _ container.ListOptions) ([]container.Summary, error) {
	return s.containers, nil
}

// A caller that gives up while the engine creates the probe does not leave
// it behind: the create is not cut short, and the probe is removed by the
// name it was given. A probe whose removal fails is no longer "in use".
func TestProbeRemovedWhenLookupCancelledDuringCreate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FilesDir = t.TempDir()
	stub := &probeStub{creating: make(chan struct{}), release: make(chan struct{}), created: map[string]map[string]string{}}
	r, err := NewWithClient(stub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := r.imageUserDB(ctx, "sha256:img", map[string]string{"atoll.test": "scope", runtime.LabelAlloc: "inst-1"})
		done <- err
	}()
	<-stub.creating
	cancel()
	close(stub.release)
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled lookup: %v", err)
	}
	if stub.createCtx != nil {
		t.Errorf("the probe's create was cut short: %v", stub.createCtx)
	}
	if len(stub.created) != 1 {
		t.Fatalf("created %v", stub.created)
	}
	for name, labels := range stub.created {
		if !slices.Equal(stub.removed, []string{name}) {
			t.Errorf("created %s, removed %v", name, stub.removed)
		}
		if labels[probeLabel] != r.session || labels["atoll.test"] != "scope" || labels[runtime.LabelAlloc] != "" {
			t.Errorf("probe labels %v", labels)
		}
	}
	if len(r.probes) != 0 || len(r.userDBs) != 0 {
		t.Errorf("after a cancelled lookup: probes in use %v, cached %v", r.probes, r.userDBs)
	}

	// Removal fails: the lookup still succeeds, and the probe is left to
	// RemoveStaleProbes.
	stub = &probeStub{created: map[string]map[string]string{}, removeErr: errors.New("engine busy")}
	r, _ = NewWithClient(stub, cfg)
	if _, err := r.imageUserDB(context.Background(), "sha256:img", nil); err != nil {
		t.Fatal(err)
	}
	if len(stub.removed) != 1 || len(r.probes) != 0 {
		t.Errorf("removed %v, in use %v", stub.removed, r.probes)
	}
}

// RemoveStaleProbes removes the probes of its selector except the ones in
// use, and reports a failed removal.
func TestRemoveStaleProbesSkipsProbesInUse(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FilesDir = t.TempDir()
	stub := &probeStub{created: map[string]map[string]string{}}
	r, _ := NewWithClient(stub, cfg)
	r.probes["atoll-probe-mine-1"] = struct{}{}
	sel := map[string]string{"atoll.test": "scope"}
	stub.containers = []container.Summary{
		{ID: "c1", Names: []string{"/atoll-probe-mine-1"}, Labels: map[string]string{probeLabel: r.session, "atoll.test": "scope"}},
		{ID: "c2", Names: []string{"/atoll-probe-dead-1"}, Labels: map[string]string{probeLabel: "dead", "atoll.test": "scope"}},
		{ID: "c3", Names: []string{"/atoll-probe-dead-2"}, Labels: map[string]string{probeLabel: "dead", "atoll.test": "other"}},
		{ID: "c4", Names: []string{"/web"}, Labels: map[string]string{"atoll.test": "scope"}},
		{ID: "c5", Names: []string{"/atoll-probe-old"}, Labels: map[string]string{probeLabel: "true", "atoll.test": "scope"}},
	}
	n, err := r.RemoveStaleProbes(context.Background(), sel)
	if n != 2 || err != nil || !slices.Equal(stub.removed, []string{"c2", "c5"}) {
		t.Fatalf("removed %d %v (%v), want c2 and c5", n, stub.removed, err)
	}
	stub.removed, stub.removeErr = nil, errors.New("engine busy")
	if n, err := r.RemoveStaleProbes(context.Background(), sel); n != 0 || err == nil || !strings.Contains(err.Error(), "atoll-probe-dead-1: engine busy") {
		t.Fatalf("failing removal: %d %v", n, err)
	}
}
