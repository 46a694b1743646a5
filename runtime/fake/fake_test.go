package fake_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/runtime"
	"github.com/atollhq/atoll/runtime/fake"
	"github.com/atollhq/atoll/runtime/runtimetest"
)

const img = "hello:1"

var passwd = []byte("root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")

func TestConformance(t *testing.T) {
	runtimetest.Run(t, func(t *testing.T) runtimetest.Fixture {
		f := fake.New()
		f.AddImage(img, fake.Image{Passwd: passwd})
		return runtimetest.Fixture{
			Runtime: f,
			Image:   img,
			Prefix:  "t-",
			Labels:  map[string]string{"atoll.test": "1"},
			Program: func(spec *runtime.ContainerSpec, stdout, stderr []string, code int) {
				f.SetBehavior(spec.Name, fake.Behavior{Stdout: stdout, Stderr: stderr, Exit: true, ExitCode: code})
			},
			ExecCmd: []string{"echo", "ok"},
		}
	})
}

var ctx = context.Background()

func newFake(t *testing.T) *fake.Fake {
	f := fake.New()
	f.AddImage(img, fake.Image{Passwd: passwd, Group: []byte("staff:x:50:\n")})
	return f
}

func create(t *testing.T, f *fake.Fake, spec runtime.ContainerSpec) string {
	t.Helper()
	if spec.Image == "" {
		spec.Image = img
	}
	id, err := f.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func inspect(t *testing.T, f *fake.Fake, id string) runtime.ContainerInfo {
	t.Helper()
	info, err := f.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestPullAndMissingImage(t *testing.T) {
	f := newFake(t)
	err := f.EnsureImage(ctx, "hello:2")
	if !errors.Is(err, runtime.ErrImageNotFound) || !strings.HasPrefix(err.Error(), `image "hello:2" not found on this host and could not be pulled`) {
		t.Fatalf("EnsureImage(hello:2) = %v", err)
	}
	f.AllowPull("hello:2")
	if err := f.EnsureImage(ctx, "hello:2"); err != nil || !f.HasImage("hello:2") {
		t.Fatalf("after AllowPull: %v", err)
	}
	f.RemoveImage("hello:2")
	if _, err := f.Create(ctx, runtime.ContainerSpec{Name: "x", Image: "hello:2"}); !errors.Is(err, runtime.ErrImageNotFound) {
		t.Fatalf("Create after RemoveImage: %v", err)
	}
}

func TestInjectedFailures(t *testing.T) {
	f := newFake(t)
	boom := errors.New("engine hiccup")
	f.FailNext(fake.OpCreate, boom)
	f.FailNext(fake.OpCreate, runtime.ErrAlreadyExists)
	if _, err := f.Create(ctx, runtime.ContainerSpec{Name: "a", Image: img}); err != boom {
		t.Fatalf("first Create: %v", err)
	}
	if _, err := f.Create(ctx, runtime.ContainerSpec{Name: "a", Image: img}); !errors.Is(err, runtime.ErrAlreadyExists) {
		t.Fatalf("second Create: %v", err)
	}
	id := create(t, f, runtime.ContainerSpec{Name: "a"})
	for _, op := range []fake.Op{fake.OpStart, fake.OpStop, fake.OpInspect, fake.OpList, fake.OpStats, fake.OpLogs, fake.OpExec, fake.OpRemove} {
		f.FailNext(op, boom)
	}
	calls := map[fake.Op]func() error{
		fake.OpStart:   func() error { return f.Start(ctx, id) },
		fake.OpStop:    func() error { return f.Stop(ctx, id, time.Second) },
		fake.OpInspect: func() error { _, err := f.Inspect(ctx, id); return err },
		fake.OpList:    func() error { _, err := f.List(ctx, nil); return err },
		fake.OpStats:   func() error { _, err := f.Stats(ctx, id); return err },
		fake.OpLogs:    func() error { _, err := f.Logs(ctx, id, runtime.LogOptions{}); return err },
		fake.OpExec:    func() error { _, err := f.Exec(ctx, id, []string{"x"}); return err },
		fake.OpRemove:  func() error { return f.Remove(ctx, id) },
	}
	for _, op := range slices.Sorted(maps.Keys(calls)) {
		if err := calls[op](); err != boom {
			t.Errorf("%s: %v, want the injected error", op, err)
		}
	}
	// Each failure fires once.
	if err := f.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
}

func TestCrashLoopAndStartError(t *testing.T) {
	f := newFake(t)
	f.SetImageBehavior(img, fake.Behavior{Stderr: []string{"panic: boom"}, Exit: true, ExitCode: 2})
	id := create(t, f, runtime.ContainerSpec{Name: "crashy"})
	for i := range 3 {
		if err := f.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		if info := inspect(t, f, id); info.State != runtime.StateExited || info.ExitCode != 2 || info.Running() {
			t.Fatalf("start %d: %+v", i, info)
		}
	}
	s, _ := f.Logs(ctx, id, runtime.LogOptions{})
	n := 0
	for l, err := s.Next(); err == nil; l, err = s.Next() {
		if l.Stream != runtime.Stderr || l.Text != "panic: boom" {
			t.Fatalf("line %+v", l)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("%d lines after 3 crashes", n)
	}

	// A name's behavior wins over the image's.
	f.SetBehavior("broken", fake.Behavior{StartError: `exec: "/app": stat /app: no such file or directory`})
	id = create(t, f, runtime.ContainerSpec{Name: "broken"})
	if err := f.Start(ctx, id); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Start: %v", err)
	}
	if info := inspect(t, f, id); info.State != runtime.StateCreated || info.ExitCode != 127 || info.Error == "" {
		t.Fatalf("after failed start: %+v", info)
	}
}

func TestExitOOMAndStopCodes(t *testing.T) {
	f := newFake(t)
	id := create(t, f, runtime.ContainerSpec{Name: "a"})
	if err := f.Exit(id, 1); !errors.Is(err, runtime.ErrNotRunning) {
		t.Fatalf("Exit of created: %v", err)
	}
	f.Start(ctx, id)
	if err := f.Exit(id, 3); err != nil {
		t.Fatal(err)
	}
	if info := inspect(t, f, id); info.ExitCode != 3 || info.OOMKilled || info.IPAddress != "" || info.Ports != nil {
		t.Fatalf("after Exit: %+v", info)
	}
	f.Start(ctx, id)
	if err := f.OOMKill(id); err != nil {
		t.Fatal(err)
	}
	if info := inspect(t, f, id); info.ExitCode != 137 || !info.OOMKilled {
		t.Fatalf("after OOMKill: %+v", info)
	}
	f.SetBehavior("oom", fake.Behavior{OOM: true})
	oom := create(t, f, runtime.ContainerSpec{Name: "oom"})
	f.Start(ctx, oom)
	if info := inspect(t, f, oom); !info.OOMKilled || info.State != runtime.StateExited {
		t.Fatalf("OOM behavior: %+v", info)
	}

	f.Start(ctx, id)
	f.Stop(ctx, id, 0)
	if info := inspect(t, f, id); info.ExitCode != 137 || info.OOMKilled {
		t.Fatalf("Stop with timeout 0: %+v", info)
	}
	f.SetBehavior("stubborn", fake.Behavior{IgnoreSIGTERM: true})
	st := create(t, f, runtime.ContainerSpec{Name: "stubborn"})
	f.Start(ctx, st)
	f.Stop(ctx, st, 10*time.Second)
	if info := inspect(t, f, st); info.ExitCode != 137 {
		t.Fatalf("Stop of a SIGTERM-ignoring container: %+v", info)
	}
}

func TestFollowLogs(t *testing.T) {
	f := newFake(t)
	id := create(t, f, runtime.ContainerSpec{Name: "a"})
	f.Start(ctx, id)
	f.WriteLog(id, runtime.Stdout, "before")
	s, err := f.Logs(ctx, id, runtime.LogOptions{Follow: true, Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := make(chan runtime.LogLine)
	errc := make(chan error, 1)
	go func() {
		for {
			l, err := s.Next()
			if err != nil {
				errc <- err
				close(got)
				return
			}
			got <- l
		}
	}()
	if l := <-got; l.Text != "before" {
		t.Fatalf("first line %+v", l)
	}
	f.WriteLog(id, runtime.Stderr, "during")
	if l := <-got; l.Text != "during" || l.Stream != runtime.Stderr {
		t.Fatalf("followed line %+v", l)
	}
	f.Exit(id, 0)
	if _, ok := <-got; ok {
		t.Fatal("line after exit")
	}
	if err := <-errc; err != io.EOF {
		t.Fatalf("end of followed stream: %v", err)
	}

	// Cancelling the context ends a waiting Next.
	f.Start(ctx, id)
	cctx, cancel := context.WithCancel(ctx)
	s2, _ := f.Logs(cctx, id, runtime.LogOptions{Follow: true, Since: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)})
	done := make(chan error)
	go func() { _, err := s2.Next(); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestFilesStatsAndExec(t *testing.T) {
	f := newFake(t)
	if err := f.EnsureVolume(ctx, "v1", nil); err != nil {
		t.Fatal(err)
	}
	id := create(t, f, runtime.ContainerSpec{
		Name:    "a",
		Files:   []runtime.FileMount{{Content: []byte("x"), MountPath: "/etc/a", Owner: "app"}, {Content: []byte("y"), MountPath: "/etc/b", Owner: "7:staff", Mode: 0o400}},
		Volumes: []runtime.VolumeMount{{VolumeName: "v1", Path: "/data"}},
		Limits:  runtime.Limits{MemoryBytes: 64 * runtime.MB},
	})
	files, _ := f.Files(id)
	want := []fake.File{
		{MountPath: "/etc/a", Content: []byte("x"), UID: 1000, GID: 1000, Mode: 0o444},
		{MountPath: "/etc/b", Content: []byte("y"), UID: 7, GID: 50, Mode: 0o400},
	}
	if fmt.Sprint(files) != fmt.Sprint(want) {
		t.Fatalf("Files = %v", files)
	}
	f.SetUsage(id, fake.Usage{CPUMillicores: 250, MemoryMB: 30, Pids: 3, WritableLayerMB: 2})
	f.SetVolumeSizeMB("v1", 5)
	st, _ := f.Stats(ctx, id)
	if st.CPUMillicores != 0 || st.MemoryMB != 0 || st.StorageMB != 7 || st.VolumesMB["v1"] != 5 {
		t.Fatalf("Stats of created: %+v", st)
	}
	f.Start(ctx, id)
	st, _ = f.Stats(ctx, id)
	if st.CPUMillicores != 250 || st.MemoryMB != 30 || st.MemoryLimitMB != 64 || st.Pids != 3 || st.StorageMB != 7 {
		t.Fatalf("Stats of running: %+v", st)
	}
	f.ExecFunc = func(id string, cmd []string) (runtime.ExecResult, error) {
		return runtime.ExecResult{ExitCode: 9, Stderr: []byte(strings.Join(cmd, ","))}, nil
	}
	if res, err := f.Exec(ctx, id, []string{"a", "b"}); err != nil || res.ExitCode != 9 || string(res.Stderr) != "a,b" {
		t.Fatalf("Exec = %+v, %v", res, err)
	}
	if spec, _ := f.Spec(id); spec.Name != "a" || len(spec.Volumes) != 1 {
		t.Fatalf("Spec = %+v", spec)
	}
}

// TestDeterministic: the same calls give the same ids, ports, addresses and
// times.
func TestDeterministic(t *testing.T) {
	run := func() []runtime.ContainerInfo {
		f := newFake(t)
		for i := range 3 {
			id := create(t, f, runtime.ContainerSpec{Name: fmt.Sprintf("c%d", i), Ports: []runtime.Port{{Number: 80, Publish: true}}})
			f.Start(ctx, id)
		}
		var out []runtime.ContainerInfo
		for _, c := range must(f.List(ctx, nil)) {
			out = append(out, inspect(t, f, c.ID))
		}
		return out
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("two runs differ:\n%v\n%v", a, b)
	}
	if a[0].Ports[0].HostPort == a[1].Ports[0].HostPort || a[0].IPAddress == a[1].IPAddress || a[0].ID == a[1].ID {
		t.Fatalf("not unique: %v", a)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestScale: a simulated host with many containers stays fast to query.
func TestScale(t *testing.T) {
	f := newFake(t)
	const n = 5000
	start := time.Now()
	for i := range n {
		spec := runtime.ContainerSpec{Name: fmt.Sprintf("alloc-%05d", i), Labels: map[string]string{runtime.LabelApp: fmt.Sprintf("app-%d", i%50)}}
		id := create(t, f, spec)
		if err := f.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := f.List(ctx, map[string]string{runtime.LabelApp: "app-7"})
	if err != nil || len(cs) != n/50 {
		t.Fatalf("List: %d, %v", len(cs), err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("%d containers took %v", n, d)
	}
}
