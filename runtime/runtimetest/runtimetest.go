// Package runtimetest holds the conformance tests that every
// runtime.Runtime implementation passes: runtime/docker against the real
// engine and runtime/fake in memory. They pin down the contract the agent
// relies on (idempotent steps, sentinel errors, label selection, volume
// rules), so the fake cannot drift from Docker's behaviour.
package runtimetest

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/runtime"
)

// Fixture adapts the conformance tests to one implementation.
type Fixture struct {
	Runtime runtime.Runtime
	// Image is present on the host; its containers run until stopped.
	Image string
	// Prefix starts every container and volume name, to keep parallel
	// tests apart.
	Prefix string
	// Labels go on every container and volume the tests create, so the
	// caller can clean them up.
	Labels map[string]string
	// Program changes spec so that its container, once started, prints the
	// stdout and stderr lines and exits with code.
	Program func(spec *runtime.ContainerSpec, stdout, stderr []string, code int)
	// ExecCmd exists in Image and exits 0 printing "ok" on stdout.
	ExecCmd []string
}

// Run runs the conformance tests; newFixture is called once per subtest.
func Run(t *testing.T, newFixture func(t *testing.T) Fixture) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, f Fixture)
	}{
		{"MissingImage", testMissingImage},
		{"Lifecycle", testLifecycle},
		{"MissingContainer", testMissingContainer},
		{"NameConflict", testNameConflict},
		{"InvalidSpec", testInvalidSpec},
		{"ExitCodeAndLogs", testExitCodeAndLogs},
		{"ListByLabel", testListByLabel},
		{"Volumes", testVolumes},
		{"FileOwners", testFileOwners},
		{"PublishedPort", testPublishedPort},
		{"StatsAndExec", testStatsAndExec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newFixture(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (f Fixture) spec(name string) runtime.ContainerSpec {
	return runtime.ContainerSpec{
		Name:   f.Prefix + name,
		Image:  f.Image,
		Labels: maps.Clone(f.Labels),
		Limits: runtime.Limits{MilliCPU: 100, MemoryBytes: 32 * runtime.MB},
	}
}

func (f Fixture) create(t *testing.T, spec runtime.ContainerSpec) string {
	t.Helper()
	id, err := f.Runtime.Create(ctxT(t), spec)
	if err != nil {
		t.Fatalf("Create(%s): %v", spec.Name, err)
	}
	t.Cleanup(func() { f.Runtime.Remove(context.Background(), id) })
	return id
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

// WaitFor polls Inspect until cond holds (at once for an in-memory runtime)
// and returns the info that satisfied it.
func WaitFor(t testing.TB, rt runtime.Runtime, id string, what string, cond func(runtime.ContainerInfo) bool) runtime.ContainerInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := rt.Inspect(context.Background(), id)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if cond(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state %+v", what, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testMissingImage(t *testing.T, f Fixture) {
	ctx := ctxT(t)
	ref := "atoll-missing-" + strings.ToLower(f.Prefix) + "img:2"
	start := time.Now()
	err := f.Runtime.EnsureImage(ctx, ref)
	wantErr(t, "EnsureImage(missing)", err, runtime.ErrImageNotFound)
	if !strings.Contains(err.Error(), strconv.Quote(ref)) {
		t.Fatalf("error %q does not name the image", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("EnsureImage took %v", d)
	}
	spec := f.spec("noimage")
	spec.Image = ref
	_, err = f.Runtime.Create(ctx, spec)
	wantErr(t, "Create(missing image)", err, runtime.ErrImageNotFound)
	must(t, "EnsureImage(present)", f.Runtime.EnsureImage(ctx, f.Image))
}

func testLifecycle(t *testing.T, f Fixture) {
	ctx := ctxT(t)
	rt := f.Runtime
	spec := f.spec("life")
	id := f.create(t, spec)

	info, err := rt.Inspect(ctx, id)
	must(t, "Inspect", err)
	if info.ID != id || info.Name != spec.Name || info.Image != f.Image || info.State != runtime.StateCreated || info.Running() {
		t.Fatalf("after Create: %+v", info)
	}
	if !runtime.MatchLabels(info.Labels, f.Labels) || info.CreatedAt.IsZero() || !info.StartedAt.IsZero() {
		t.Fatalf("after Create: labels %v created %v started %v", info.Labels, info.CreatedAt, info.StartedAt)
	}
	if byName, err := rt.Inspect(ctx, spec.Name); err != nil || byName.ID != id {
		t.Fatalf("Inspect by name: %+v, %v", byName, err)
	}

	must(t, "Start", rt.Start(ctx, id))
	must(t, "Start again", rt.Start(ctx, id))
	info, err = rt.Inspect(ctx, id)
	must(t, "Inspect", err)
	if info.State != runtime.StateRunning || !info.Running() || info.StartedAt.IsZero() {
		t.Fatalf("after Start: %+v", info)
	}

	must(t, "Stop", rt.Stop(ctx, id, time.Second))
	must(t, "Stop again", rt.Stop(ctx, id, time.Second))
	info, err = rt.Inspect(ctx, id)
	must(t, "Inspect", err)
	if info.State != runtime.StateExited || info.FinishedAt.IsZero() || info.OOMKilled {
		t.Fatalf("after Stop: %+v", info)
	}

	must(t, "restart", rt.Start(ctx, id))
	if info, _ := rt.Inspect(ctx, id); info.State != runtime.StateRunning {
		t.Fatalf("after restart: %+v", info)
	}
	must(t, "Remove running", rt.Remove(ctx, id))
	_, err = rt.Inspect(ctx, id)
	wantErr(t, "Inspect removed", err, runtime.ErrNotFound)
	must(t, "Remove again", rt.Remove(ctx, id))
	if cs, err := rt.List(ctx, f.Labels); err != nil || len(cs) != 0 {
		t.Fatalf("List after Remove: %v, %v", cs, err)
	}
}

func testMissingContainer(t *testing.T, f Fixture) {
	ctx := ctxT(t)
	rt := f.Runtime
	id := f.Prefix + "never-created"
	wantErr(t, "Start", rt.Start(ctx, id), runtime.ErrNotFound)
	wantErr(t, "Stop", rt.Stop(ctx, id, 0), runtime.ErrNotFound)
	_, err := rt.Inspect(ctx, id)
	wantErr(t, "Inspect", err, runtime.ErrNotFound)
	_, err = rt.Stats(ctx, id)
	wantErr(t, "Stats", err, runtime.ErrNotFound)
	_, err = rt.StorageUsedMB(ctx, id)
	wantErr(t, "StorageUsedMB", err, runtime.ErrNotFound)
	_, err = rt.Logs(ctx, id, runtime.LogOptions{})
	wantErr(t, "Logs", err, runtime.ErrNotFound)
	_, err = rt.Exec(ctx, id, f.ExecCmd)
	wantErr(t, "Exec", err, runtime.ErrNotFound)
	must(t, "Remove", rt.Remove(ctx, id))
}

func testNameConflict(t *testing.T, f Fixture) {
	spec := f.spec("dup")
	f.create(t, spec)
	_, err := f.Runtime.Create(ctxT(t), spec)
	wantErr(t, "second Create", err, runtime.ErrAlreadyExists)
}

func testInvalidSpec(t *testing.T, f Fixture) {
	ctx := ctxT(t)
	spec := f.spec("invalid")
	spec.Ports = []runtime.Port{{Number: 70000}}
	spec.Limits.MemoryBytes = 1
	_, err := f.Runtime.Create(ctx, spec)
	wantErr(t, "Create", err, runtime.ErrInvalidSpec)
	if !strings.Contains(err.Error(), "70000") || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("error does not list every problem: %v", err)
	}
	if _, err := f.Runtime.Inspect(ctx, spec.Name); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("an invalid spec created a container: %v", err)
	}
}

func testExitCodeAndLogs(t *testing.T, f Fixture) {
	ctx := ctxT(t)
	rt := f.Runtime
	spec := f.spec("exit3")
	f.Program(&spec, []string{"hello out", "second"}, []string{"hello err"}, 3)
	id := f.create(t, spec)
	must(t, "Start", rt.Start(ctx, id))
	info := WaitFor(t, rt, id, "exit", func(i runtime.ContainerInfo) bool { return i.State == runtime.StateExited })
	if info.ExitCode != 3 || info.OOMKilled || info.FinishedAt.Before(info.StartedAt) {
		t.Fatalf("after exit: %+v", info)
	}

	lines := readLines(t, rt, id, runtime.LogOptions{})
	var out, errs []string
	for i, l := range lines {
		if l.Time.IsZero() || (i > 0 && l.Time.Before(lines[i-1].Time)) {
			t.Errorf("line %d %+v: timestamps must be set and in order", i, l)
		}
		switch l.Stream {
		case runtime.Stdout:
			out = append(out, l.Text)
		case runtime.Stderr:
			errs = append(errs, l.Text)
		}
	}
	if !slices.Equal(out, []string{"hello out", "second"}) || !slices.Equal(errs, []string{"hello err"}) {
		t.Fatalf("logs: stdout %q stderr %q", out, errs)
	}
	if tail := readLines(t, rt, id, runtime.LogOptions{Tail: 1}); len(tail) != 1 || tail[0] != lines[2] {
		t.Fatalf("Tail 1 gave %v", tail)
	}
	if since := readLines(t, rt, id, runtime.LogOptions{Since: lines[1].Time}); !slices.Equal(since, lines[1:]) {
		t.Fatalf("Since the second line's time gave %v", since)
	}
	if late := readLines(t, rt, id, runtime.LogOptions{Since: lines[2].Time.Add(time.Second)}); len(late) != 0 {
		t.Fatalf("Since after the last line gave %v", late)
	}
	// Following an exited container's logs ends at once.
	if all := readLines(t, rt, id, runtime.LogOptions{Follow: true}); len(all) != 3 {
		t.Fatalf("Follow of exited container gave %v", all)
	}
}

func readLines(t *testing.T, rt runtime.Runtime, id string, opts runtime.LogOptions) []runtime.LogLine {
	t.Helper()
	s, err := rt.Logs(ctxT(t), id, opts)
	must(t, "Logs", err)
	defer s.Close()
	var out []runtime.LogLine
	for {
		l, err := s.Next()
		if err == io.EOF {
			return out
		}
		must(t, "Logs.Next", err)
		out = append(out, l)
	}
}

func testListByLabel(t *testing.T, f Fixture) {
	ctx := ctxT(t)
	rt := f.Runtime
	a := f.spec("list-a")
	a.Labels[runtime.LabelApp] = "web"
	a.Labels[runtime.LabelAlloc] = f.Prefix + "a"
	b := f.spec("list-b")
	b.Labels[runtime.LabelApp] = "db"
	b.Labels[runtime.LabelAlloc] = f.Prefix + "b"
	idA, idB := f.create(t, a), f.create(t, b)
	must(t, "Start", rt.Start(ctx, idA))

	sel := func(kv ...string) map[string]string {
		m := maps.Clone(f.Labels)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	all, err := rt.List(ctx, f.Labels)
	must(t, "List", err)
	if len(all) != 2 || all[0].ID != idA || all[1].ID != idB {
		t.Fatalf("List(all) = %+v", all)
	}
	if all[0].State != runtime.StateRunning || all[1].State != runtime.StateCreated || all[0].Name != a.Name ||
		all[0].Image != f.Image || all[0].Labels[runtime.LabelApp] != "web" || all[0].CreatedAt.IsZero() {
		t.Fatalf("List summaries: %+v", all)
	}
	web, err := rt.List(ctx, sel(runtime.LabelApp, "web"))
	must(t, "List web", err)
	if len(web) != 1 || web[0].ID != idA {
		t.Fatalf("List(web) = %+v", web)
	}
	none, err := rt.List(ctx, sel(runtime.LabelApp, "web", runtime.LabelAlloc, f.Prefix+"b"))
	must(t, "List none", err)
	if len(none) != 0 {
		t.Fatalf("List(web, alloc b) = %+v", none)
	}
	empty, err := rt.List(ctx, sel(runtime.LabelApp, ""))
	must(t, "List empty value", err)
	if len(empty) != 0 {
		t.Fatalf("List(app=\"\") = %+v", empty)
	}
}

func testVolumes(t *testing.T, f Fixture) {
	ctx := ctxT(t)
	rt := f.Runtime
	name := f.Prefix + "vol"
	labels := maps.Clone(f.Labels)
	labels[runtime.LabelApp] = "web"
	must(t, "EnsureVolume", rt.EnsureVolume(ctx, name, labels))
	t.Cleanup(func() { rt.RemoveVolume(context.Background(), name) })
	must(t, "EnsureVolume again", rt.EnsureVolume(ctx, name, labels))
	if err := rt.EnsureVolume(ctx, "bad name!", nil); !errors.Is(err, runtime.ErrInvalidSpec) {
		t.Fatalf("EnsureVolume(bad name): %v", err)
	}

	vs, err := rt.ListVolumes(ctx, labels)
	must(t, "ListVolumes", err)
	if len(vs) != 1 || vs[0].Name != name || vs[0].Labels[runtime.LabelApp] != "web" {
		t.Fatalf("ListVolumes = %+v", vs)
	}
	if mb, err := rt.VolumeSizeMB(ctx, name); err != nil || mb != 0 {
		t.Fatalf("VolumeSizeMB(new) = %v, %v", mb, err)
	}

	spec := f.spec("volmissing")
	spec.Volumes = []runtime.VolumeMount{{VolumeName: f.Prefix + "nope", Path: "/data"}}
	_, err = rt.Create(ctx, spec)
	wantErr(t, "Create with missing volume", err, runtime.ErrVolumeNotFound)

	spec = f.spec("voluser")
	spec.Volumes = []runtime.VolumeMount{{VolumeName: name, Path: "/data"}}
	id := f.create(t, spec)
	wantErr(t, "RemoveVolume in use", rt.RemoveVolume(ctx, name), runtime.ErrVolumeInUse)
	st, err := rt.Stats(ctx, id)
	must(t, "Stats", err)
	if _, ok := st.VolumesMB[name]; !ok {
		t.Fatalf("Stats.VolumesMB = %v lacks %s", st.VolumesMB, name)
	}
	must(t, "Remove container", rt.Remove(ctx, id))
	must(t, "RemoveVolume", rt.RemoveVolume(ctx, name))
	must(t, "RemoveVolume again", rt.RemoveVolume(ctx, name))
	_, err = rt.VolumeSizeMB(ctx, name)
	wantErr(t, "VolumeSizeMB(removed)", err, runtime.ErrVolumeNotFound)
	if vs, err := rt.ListVolumes(ctx, labels); err != nil || len(vs) != 0 {
		t.Fatalf("ListVolumes after remove = %v, %v", vs, err)
	}
}

func testFileOwners(t *testing.T, f Fixture) {
	ctx := ctxT(t)
	spec := f.spec("owner-ghost")
	spec.Files = []runtime.FileMount{{Content: []byte("x"), MountPath: "/etc/x.conf", Owner: "ghost-user"}}
	_, err := f.Runtime.Create(ctx, spec)
	wantErr(t, "Create with unknown owner", err, runtime.ErrUnknownOwner)
	if !strings.Contains(err.Error(), "ghost-user") {
		t.Fatalf("error does not name the owner: %v", err)
	}
	if _, err := f.Runtime.Inspect(ctx, spec.Name); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("a failed Create left a container: %v", err)
	}
	spec = f.spec("owner-num")
	spec.Files = []runtime.FileMount{{Content: []byte("x"), MountPath: "/etc/x.conf", Owner: "4321:4321", Mode: 0o400}}
	f.create(t, spec)
}

func testPublishedPort(t *testing.T, f Fixture) {
	ctx := ctxT(t)
	spec := f.spec("port")
	spec.Ports = []runtime.Port{{Name: "http", Number: 8080, Publish: true}, {Name: "metrics", Number: 9090}}
	id := f.create(t, spec)
	must(t, "Start", f.Runtime.Start(ctx, id))
	info, err := f.Runtime.Inspect(ctx, id)
	must(t, "Inspect", err)
	if len(info.Ports) != 1 || info.Ports[0].ContainerPort != 8080 || info.Ports[0].Protocol != runtime.TCP ||
		info.Ports[0].HostIP != runtime.DefaultHostIP || info.Ports[0].HostPort == 0 {
		t.Fatalf("Ports = %+v", info.Ports)
	}
	if info.IPAddress == "" {
		t.Fatalf("no IP address: %+v", info)
	}
	list, err := f.Runtime.List(ctx, f.Labels)
	must(t, "List", err)
	if len(list) != 1 || !slices.Equal(list[0].Ports, info.Ports) {
		t.Fatalf("List ports %+v, Inspect ports %+v", list, info.Ports)
	}
}

func testStatsAndExec(t *testing.T, f Fixture) {
	ctx := ctxT(t)
	rt := f.Runtime
	id := f.create(t, f.spec("stats"))
	st, err := rt.Stats(ctx, id)
	must(t, "Stats(created)", err)
	if st.CPUMillicores != 0 || st.MemoryMB != 0 || st.StorageMB < 0 || st.Time.IsZero() {
		t.Fatalf("Stats of a created container: %+v", st)
	}
	if mb, err := rt.StorageUsedMB(ctx, id); err != nil || mb != st.StorageMB {
		t.Fatalf("StorageUsedMB = %v, %v; Stats said %v", mb, err, st.StorageMB)
	}
	_, err = rt.Exec(ctx, id, f.ExecCmd)
	wantErr(t, "Exec(created)", err, runtime.ErrNotRunning)

	must(t, "Start", rt.Start(ctx, id))
	st, err = rt.Stats(ctx, id)
	must(t, "Stats(running)", err)
	if st.CPUMillicores < 0 || st.MemoryMB <= 0 || st.StorageMB < 0 || st.StorageMB != st.WritableLayerMB+sum(st.VolumesMB) {
		t.Fatalf("Stats of a running container: %+v", st)
	}
	res, err := rt.Exec(ctx, id, f.ExecCmd)
	must(t, "Exec", err)
	if res.ExitCode != 0 || strings.TrimSpace(string(res.Stdout)) != "ok" {
		t.Fatalf("Exec = %+v (stdout %q)", res, res.Stdout)
	}
	_, err = rt.Exec(ctx, id, nil)
	wantErr(t, "Exec(no command)", err, runtime.ErrInvalidSpec)
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}
