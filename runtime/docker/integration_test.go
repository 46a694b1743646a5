package docker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"

	"github.com/atollhq/atoll/integration/testimage"
	"github.com/atollhq/atoll/runtime"
	"github.com/atollhq/atoll/runtime/docker"
	"github.com/atollhq/atoll/runtime/runtimetest"
)

// These tests run against the local Docker Engine with the test image of
// integration/testimage. They reach the test app through a port published on
// 127.0.0.1, which works wherever the engine runs on this host.

func TestConformance(t *testing.T) {
	img := testimage.Ensure(t, "")
	runtimetest.Run(t, func(t *testing.T) runtimetest.Fixture {
		rt, v := docker.NewTestRuntime(t)
		return runtimetest.Fixture{
			Runtime: rt,
			Image:   img,
			Prefix:  v + "-",
			Labels:  map[string]string{docker.TestLabel: v},
			Program: func(spec *runtime.ContainerSpec, stdout, stderr []string, code int) {
				// Stdout first, then stderr, with pauses so that the
				// engine's timestamps keep the order.
				spec.Command = []string{"/testapp", "emit"}
				for _, l := range stdout {
					spec.Command = append(spec.Command, "out:"+l, "sleep:5")
				}
				for _, l := range stderr {
					spec.Command = append(spec.Command, "err:"+l, "sleep:5")
				}
				spec.Command = append(spec.Command, fmt.Sprintf("exit:%d", code))
			},
			ExecCmd: []string{"/testapp", "echo", "ok"},
		}
	})
}

func cli(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// app is a started test-app container and the URL of its published port.
type app struct {
	id, url string
}

func appSpec(t *testing.T, name, v string) runtime.ContainerSpec {
	spec := docker.TestSpec(v+"-"+name, testimage.Ensure(t, ""), v)
	spec.Ports = []runtime.Port{{Name: "http", Number: 8080, Publish: true}}
	spec.Limits = runtime.Limits{MilliCPU: 500, MemoryBytes: 64 * runtime.MB}
	return spec
}

// startApp creates and starts the container and waits until the app answers.
func startApp(t *testing.T, rt *docker.Runtime, spec runtime.ContainerSpec) app {
	t.Helper()
	ctx := ctxT(t)
	id, err := rt.Create(ctx, spec)
	must(t, "Create", err)
	must(t, "Start", rt.Start(ctx, id))
	return app{id: id, url: waitApp(t, rt, id)}
}

// waitApp finds the container's published port and waits for /healthz.
func waitApp(t *testing.T, rt *docker.Runtime, id string) string {
	t.Helper()
	info, err := rt.Inspect(ctxT(t), id)
	must(t, "Inspect", err)
	if len(info.Ports) == 0 {
		t.Fatalf("no published port: %+v", info)
	}
	url := fmt.Sprintf("http://%s:%d", info.Ports[0].HostIP, info.Ports[0].HostPort)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := get(url + "/healthz"); code == http.StatusOK {
			return url
		}
		if time.Now().After(deadline) {
			info, _ := rt.Inspect(ctxT(t), id)
			t.Fatalf("app at %s not ready: %+v", url, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func get(url string) (int, string) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func mustGet(t *testing.T, url string) string {
	t.Helper()
	code, body := get(url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return body
}

func TestHardeningLimitsAndEnv(t *testing.T) {
	t.Parallel()
	rt, v := docker.NewTestRuntime(t)
	spec := appSpec(t, "hard", v)
	spec.Limits = runtime.Limits{MilliCPU: 250, MemoryBytes: 48 * runtime.MB, PidsLimit: 64, StorageMB: 100}
	spec.Env = map[string]string{"GREETING": "hello world", "QUOTED": `a "b" 'c' $d`, "EMPTY": ""}
	start := time.Now()
	a := startApp(t, rt, spec)
	t.Logf("create+start+ready: %v", time.Since(start))

	c, err := cli(t).ContainerInspect(ctxT(t), a.id)
	must(t, "ContainerInspect", err)
	h := c.HostConfig
	if h.NanoCPUs != 250_000_000 || h.Memory != 48<<20 || h.MemorySwap != 48<<20 || h.PidsLimit == nil || *h.PidsLimit != 64 {
		t.Errorf("limits: NanoCpus %d Memory %d MemorySwap %d PidsLimit %v", h.NanoCPUs, h.Memory, h.MemorySwap, h.PidsLimit)
	}
	// The engine normalizes capability names to CAP_X and sorts them.
	var wantAdd []string
	for _, c := range docker.DefaultCapAdd {
		wantAdd = append(wantAdd, "CAP_"+c)
	}
	slices.Sort(wantAdd)
	gotAdd := slices.Sorted(slices.Values(h.CapAdd))
	if h.Privileged || !slices.Contains(h.CapDrop, "ALL") || !slices.Equal(gotAdd, wantAdd) {
		t.Errorf("privileges: Privileged %v CapDrop %v CapAdd %v", h.Privileged, h.CapDrop, h.CapAdd)
	}
	if !slices.Contains(h.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("SecurityOpt = %v", h.SecurityOpt)
	}
	if h.RestartPolicy.Name != "no" {
		t.Errorf("RestartPolicy = %+v", h.RestartPolicy)
	}

	// What the process really has: exactly the four capabilities, and
	// no_new_privs set.
	status := mustGet(t, a.url+"/file?path=/proc/self/status")
	const wantCaps = 1<<0 | 1<<6 | 1<<7 | 1<<10 // CHOWN, SETGID, SETUID, NET_BIND_SERVICE
	if want := fmt.Sprintf("CapEff:\t%016x", wantCaps); !strings.Contains(status, want) {
		t.Errorf("want %q in /proc/self/status:\n%s", want, status)
	}
	if !strings.Contains(status, "NoNewPrivs:\t1") {
		t.Errorf("NoNewPrivs not set:\n%s", status)
	}

	for k, want := range spec.Env {
		if got := mustGet(t, a.url+"/env?k="+k); got != want {
			t.Errorf("env %s = %q, want %q", k, got, want)
		}
	}
	var all map[string]string
	must(t, "env json", json.Unmarshal([]byte(mustGet(t, a.url+"/env")), &all))
	if all["PORT"] != "8080" || all["GREETING"] != "hello world" {
		t.Errorf("env = %v", all)
	}
}

func TestFilesReadOnlyWithOwner(t *testing.T) {
	t.Parallel()
	rt, v := docker.NewTestRuntime(t)
	hostFile := filepath.Join(t.TempDir(), "from-host.txt")
	must(t, "write host file", os.WriteFile(hostFile, []byte("from the host"), 0o600))
	spec := appSpec(t, "files", v)
	spec.Files = []runtime.FileMount{
		{Content: []byte("name=app\n"), MountPath: "/etc/app/app.conf", Owner: testimage.AppUser},
		{Content: []byte("group"), MountPath: "/etc/app/group.conf", Owner: testimage.AppUser + ":root", Mode: 0o440},
		{Content: []byte("s3cret"), MountPath: "/run/secrets/token", Owner: "4242:staff", Mode: 0o400},
		{HostPath: hostFile, MountPath: "/etc/copied.txt"},
	}
	a := startApp(t, rt, spec)

	if got := mustGet(t, a.url+"/file?path=/etc/app/app.conf"); got != "name=app\n" {
		t.Errorf("app.conf = %q", got)
	}
	if got := mustGet(t, a.url+"/file?path=/etc/app/group.conf"); got != "group" {
		t.Errorf("group.conf = %q", got)
	}
	if got := mustGet(t, a.url+"/file?path=/etc/copied.txt"); got != "from the host" {
		t.Errorf("copied.txt = %q", got)
	}
	for path, want := range map[string]string{
		"/etc/app/app.conf":   fmt.Sprintf(`{"gid":%d,"mode":"0444","size":9,"uid":%d}`, testimage.AppGID, testimage.AppUID),
		"/etc/app/group.conf": fmt.Sprintf(`{"gid":0,"mode":"0440","size":5,"uid":%d}`, testimage.AppUID),
		"/run/secrets/token":  fmt.Sprintf(`{"gid":%d,"mode":"0400","size":6,"uid":4242}`, testimage.StaffGID),
		"/etc/copied.txt":     `{"gid":0,"mode":"0444","size":13,"uid":0}`,
	} {
		if got := strings.TrimSpace(mustGet(t, a.url+"/stat?path="+path)); got != want {
			t.Errorf("stat %s = %s, want %s", path, got, want)
		}
	}
	// Root in the container has no DAC_OVERRIDE: a 0400 file of another
	// user is unreadable, which shows both the owner and the dropped caps.
	if code, body := get(a.url + "/file?path=/run/secrets/token"); code != http.StatusForbidden {
		t.Errorf("reading uid 4242's 0400 file as capless root: %d %s", code, body)
	}
	// Read-only mount: even the owner's write bit would not help.
	if code, body := get(a.url + "/volume/write?path=/etc/copied.txt&data=x"); code == http.StatusOK || !strings.Contains(body, "read-only") {
		t.Errorf("writing a mounted file: %d %s", code, body)
	}
	if b, _ := os.ReadFile(hostFile); string(b) != "from the host" {
		t.Errorf("host source changed: %q", b)
	}

	c, err := cli(t).ContainerInspect(ctxT(t), a.id)
	must(t, "ContainerInspect", err)
	var filesDir string
	binds := 0
	for _, m := range c.Mounts {
		if m.Type != "bind" {
			continue
		}
		binds++
		if m.RW {
			t.Errorf("mount %s is writable", m.Destination)
		}
		filesDir = filepath.Dir(m.Source)
		fi, err := os.Stat(m.Source)
		must(t, "stat host copy", err)
		if m.Destination == "/run/secrets/token" && fi.Mode().Perm() != 0o400 {
			t.Errorf("host copy mode %v", fi.Mode())
		}
	}
	if binds != 4 {
		t.Fatalf("%d bind mounts: %+v", binds, c.Mounts)
	}
	must(t, "Remove", rt.Remove(ctxT(t), a.id))
	if _, err := os.Stat(filesDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("files dir %s survives Remove: %v", filesDir, err)
	}
}

func TestVolumeSurvivesRestartAndRecreate(t *testing.T) {
	t.Parallel()
	rt, v := docker.NewTestRuntime(t)
	ctx := ctxT(t)
	vol := v + "-data"
	must(t, "EnsureVolume", rt.EnsureVolume(ctx, vol, map[string]string{docker.TestLabel: v}))
	spec := appSpec(t, "vol", v)
	spec.Volumes = []runtime.VolumeMount{{VolumeName: vol, Path: "/data"}}
	a := startApp(t, rt, spec)

	payload := strings.Repeat("x", 300<<10)
	mustGet(t, a.url+"/volume/write?path=/data/sub/file.txt&data="+payload)
	mustGet(t, a.url+"/volume/write?path=/scratch/layer.txt&data="+payload[:200<<10])

	mb, err := rt.VolumeSizeMB(ctx, vol)
	must(t, "VolumeSizeMB", err)
	if mb < 0.29 || mb > 0.31 {
		t.Errorf("VolumeSizeMB = %v, want ~0.29", mb)
	}
	st, err := rt.Stats(ctx, a.id)
	must(t, "Stats", err)
	if st.VolumesMB[vol] != mb || st.WritableLayerMB < 0.19 || st.StorageMB != st.WritableLayerMB+mb {
		t.Errorf("storage: %+v", st)
	}
	if used, err := rt.StorageUsedMB(ctx, a.id); err != nil || used != st.StorageMB {
		t.Errorf("StorageUsedMB = %v, %v; Stats said %v", used, err, st.StorageMB)
	}

	must(t, "Stop", rt.Stop(ctx, a.id, 5*time.Second))
	must(t, "Start", rt.Start(ctx, a.id))
	url := waitApp(t, rt, a.id)
	if got := mustGet(t, url+"/volume/read?path=/data/sub/file.txt"); got != payload {
		t.Fatalf("after restart: %d bytes", len(got))
	}

	must(t, "Remove", rt.Remove(ctx, a.id))
	if err := rt.EnsureVolume(ctx, vol, nil); err != nil {
		t.Fatal(err)
	}
	b := startApp(t, rt, spec)
	if got := mustGet(t, b.url+"/volume/read?path=/data/sub/file.txt"); got != payload {
		t.Fatalf("after recreate: %d bytes", len(got))
	}
	if code, _ := get(b.url + "/volume/read?path=/scratch/layer.txt"); code != http.StatusNotFound {
		t.Errorf("writable layer survived recreate: %d", code)
	}
}

func TestMissingImageIsPrompt(t *testing.T) {
	t.Parallel()
	rt, _ := docker.NewTestRuntime(t)
	start := time.Now()
	err := rt.EnsureImage(ctxT(t), "hello:2")
	d := time.Since(start)
	if !errors.Is(err, runtime.ErrImageNotFound) || !strings.HasPrefix(err.Error(), `image "hello:2" not found on this host and could not be pulled: `) {
		t.Fatalf("EnsureImage(hello:2) = %v", err)
	}
	if d > 16*time.Second {
		t.Fatalf("took %v", d)
	}
	t.Logf("missing image reported in %v: %v", d, err)
}

func TestLogsOfRequests(t *testing.T) {
	t.Parallel()
	rt, v := docker.NewTestRuntime(t)
	a := startApp(t, rt, appSpec(t, "logs", v))
	ctx := ctxT(t)
	mustGet(t, a.url+"/env?k=PORT")
	mustGet(t, a.url+"/?x=1")

	// The engine captures output asynchronously: read until the request
	// lines are there (bounded), then check them.
	want := []string{"testapp listening on :8080", "request GET /env?k=PORT", "request GET /?x=1"}
	var texts []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		texts = nil
		s, err := rt.Logs(ctx, a.id, runtime.LogOptions{})
		must(t, "Logs", err)
		for {
			l, err := s.Next()
			if err == io.EOF {
				break
			}
			must(t, "Next", err)
			if l.Stream != runtime.Stdout || l.Time.IsZero() || time.Since(l.Time) > time.Minute {
				t.Errorf("line %+v", l)
			}
			texts = append(texts, l.Text)
		}
		s.Close()
		complete := true
		for _, w := range want {
			complete = complete && slices.Contains(texts, w)
		}
		if complete || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // poll interval while the engine catches up
	}
	for _, w := range want {
		if !slices.Contains(texts, w) {
			t.Errorf("no line %q in %q", w, texts)
		}
	}

	// Follow: a new request shows up on an open stream.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fs, err := rt.Logs(fctx, a.id, runtime.LogOptions{Follow: true, Tail: 1})
	must(t, "Logs follow", err)
	defer fs.Close()
	first, err := fs.Next()
	must(t, "Next", err)
	if first.Text != "request GET /?x=1" {
		t.Errorf("tail 1 = %q", first.Text)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); get(a.url + "/?follow=1") }()
	next, err := fs.Next()
	must(t, "Next", err)
	wg.Wait()
	if next.Text != "request GET /?follow=1" {
		t.Errorf("followed line = %q", next.Text)
	}
	cancel()
	if _, err := fs.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("Next after cancel: %v", err)
	}

	since, err := rt.Logs(ctx, a.id, runtime.LogOptions{Since: next.Time.Add(time.Nanosecond)})
	must(t, "Logs since", err)
	defer since.Close()
	if l, err := since.Next(); err != io.EOF {
		t.Errorf("Since after the last line: %+v, %v", l, err)
	}

	// Stop sends SIGTERM first: the app shuts down cleanly and says so.
	must(t, "Stop", rt.Stop(ctx, a.id, 10*time.Second))
	info, err := rt.Inspect(ctx, a.id)
	must(t, "Inspect", err)
	tail, err := rt.Logs(ctx, a.id, runtime.LogOptions{Tail: 1})
	must(t, "Logs tail", err)
	defer tail.Close()
	last, err := tail.Next()
	must(t, "Next", err)
	if info.ExitCode != 0 || last.Text != "testapp: terminated, shutting down" {
		t.Errorf("after Stop: exit %d, last line %q", info.ExitCode, last.Text)
	}
}

func TestStatsOfBusyContainer(t *testing.T) {
	t.Parallel()
	rt, v := docker.NewTestRuntime(t)
	spec := appSpec(t, "stats", v)
	spec.Limits = runtime.Limits{MilliCPU: 500, MemoryBytes: 128 * runtime.MB}
	a := startApp(t, rt, spec)
	ctx := ctxT(t)
	mustGet(t, a.url+"/alloc?mb=40")

	done := make(chan struct{})
	go func() { defer close(done); get(a.url + "/burn?ms=2500") }()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	first, err := rt.Stats(ctx, a.id) // no earlier sample: two samples inside
	must(t, "Stats", err)
	t.Logf("first Stats (two samples): %v: %+v", time.Since(start), first)
	time.Sleep(500 * time.Millisecond)
	start = time.Now()
	second, err := rt.Stats(ctx, a.id) // since the first call
	must(t, "Stats", err)
	t.Logf("second Stats (one sample): %v: %+v", time.Since(start), second)
	<-done

	// Busy: clearly above zero (the machine may be shared with other
	// tests, so no lower bound near the limit) and never above the 500m
	// quota, beyond sampling noise.
	for _, st := range []runtime.Stats{first, second} {
		if st.CPUMillicores < 50 || st.CPUMillicores > 600 {
			t.Errorf("CPU %vm while burning with a 500m limit", st.CPUMillicores)
		}
		if st.MemoryMB < 40 || st.MemoryMB > 128 || st.MemoryLimitMB != 128 {
			t.Errorf("memory %v MB of %v after allocating 40 MB", st.MemoryMB, st.MemoryLimitMB)
		}
		if st.Pids < 1 || st.StorageMB < 0 || st.Time.IsZero() {
			t.Errorf("stats %+v", st)
		}
	}
	// Idle: the window since the previous call holds no burning.
	_, err = rt.Stats(ctx, a.id)
	must(t, "Stats", err)
	time.Sleep(300 * time.Millisecond)
	idle, err := rt.Stats(ctx, a.id)
	must(t, "Stats", err)
	if idle.CPUMillicores > 50 || idle.MemoryMB < 40 {
		t.Errorf("idle: %+v", idle)
	}
}

func TestExitCodeAndOOMKill(t *testing.T) {
	t.Parallel()
	rt, v := docker.NewTestRuntime(t)
	ctx := ctxT(t)

	a := startApp(t, rt, appSpec(t, "exit", v))
	mustGet(t, a.url+"/exit?code=7")
	info := runtimetest.WaitFor(t, rt, a.id, "exit 7", func(i runtime.ContainerInfo) bool { return !i.Running() })
	if info.State != runtime.StateExited || info.ExitCode != 7 || info.OOMKilled || !info.FinishedAt.After(info.StartedAt) {
		t.Errorf("after /exit: %+v", info)
	}

	spec := appSpec(t, "oom", v)
	spec.Limits.MemoryBytes = 24 * runtime.MB
	b := startApp(t, rt, spec)
	get(b.url + "/alloc?mb=64")
	info = runtimetest.WaitFor(t, rt, b.id, "OOM kill", func(i runtime.ContainerInfo) bool { return !i.Running() })
	if !info.OOMKilled || info.ExitCode != 137 {
		t.Errorf("after allocating 64 MB under 24 MB: %+v", info)
	}

	// An entrypoint missing from the image: Start fails, the container stays.
	spec = appSpec(t, "noexec", v)
	spec.Command = []string{"/no/such/binary"}
	id, err := rt.Create(ctx, spec)
	must(t, "Create", err)
	err = rt.Start(ctx, id)
	if err == nil || errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Start with a missing entrypoint: %v", err)
	}
	info, ierr := rt.Inspect(ctx, id)
	must(t, "Inspect", ierr)
	if info.Running() || info.Error == "" {
		t.Errorf("after failed Start: %+v", info)
	}
	t.Logf("missing entrypoint: Start error %v; state %s exit %d error %q", err, info.State, info.ExitCode, info.Error)
}

func TestExecAndArgs(t *testing.T) {
	t.Parallel()
	rt, v := docker.NewTestRuntime(t)
	ctx := ctxT(t)
	a := startApp(t, rt, appSpec(t, "exec", v))
	res, err := rt.Exec(ctx, a.id, []string{"/testapp", "id"})
	must(t, "Exec id", err)
	if string(res.Stdout) != "uid=0 gid=0\n" || res.ExitCode != 0 {
		t.Errorf("id: %+v %q", res, res.Stdout)
	}
	res, err = rt.Exec(ctx, a.id, []string{"/testapp", "emit", "err:bad", "exit:4"})
	must(t, "Exec exit", err)
	if res.ExitCode != 4 || string(res.Stderr) != "bad\n" || len(res.Stdout) != 0 {
		t.Errorf("emit: %+v", res)
	}

	// Args from a shell-like string reach the process unchanged.
	args, err := runtime.SplitArgs(`echo 'Hello World' "a \"b\"" c\ d`)
	must(t, "SplitArgs", err)
	spec := appSpec(t, "args", v)
	spec.Args = args
	id, err := rt.Create(ctx, spec)
	must(t, "Create", err)
	must(t, "Start", rt.Start(ctx, id))
	runtimetest.WaitFor(t, rt, id, "echo exit", func(i runtime.ContainerInfo) bool { return i.State == runtime.StateExited })
	s, err := rt.Logs(ctx, id, runtime.LogOptions{})
	must(t, "Logs", err)
	defer s.Close()
	var got []string
	for l, err := s.Next(); err == nil; l, err = s.Next() {
		got = append(got, l.Text)
	}
	if want := []string{"Hello World", `a "b"`, "c d"}; !slices.Equal(got, want) {
		t.Errorf("args printed %q, want %q", got, want)
	}
}

// TestCreateStartLatency measures what the agent pays per container.
func TestCreateStartLatency(t *testing.T) {
	t.Parallel()
	rt, v := docker.NewTestRuntime(t)
	ctx := ctxT(t)
	const n = 5
	var create, start, stop, remove time.Duration
	for i := range n {
		spec := appSpec(t, fmt.Sprintf("lat%d", i), v)
		t0 := time.Now()
		id, err := rt.Create(ctx, spec)
		must(t, "Create", err)
		t1 := time.Now()
		must(t, "Start", rt.Start(ctx, id))
		t2 := time.Now()
		must(t, "Stop", rt.Stop(ctx, id, 2*time.Second))
		t3 := time.Now()
		must(t, "Remove", rt.Remove(ctx, id))
		t4 := time.Now()
		create, start, stop, remove = create+t1.Sub(t0), start+t2.Sub(t1), stop+t3.Sub(t2), remove+t4.Sub(t3)
	}
	t.Logf("mean over %d: create %v, start %v, stop %v, remove %v", n, create/n, start/n, stop/n, remove/n)
}

// TestRemoveTakesAnonymousVolumes: a container adopted from elsewhere (made
// here with the raw client) with an anonymous volume loses it on Remove;
// named volumes stay (see TestVolumeSurvivesRestartAndRecreate).
func TestRemoveTakesAnonymousVolumes(t *testing.T) {
	t.Parallel()
	rt, v := docker.NewTestRuntime(t)
	ctx := ctxT(t)
	c := cli(t)
	resp, err := c.ContainerCreate(ctx,
		&container.Config{Image: testimage.Ensure(t, ""), Labels: map[string]string{docker.TestLabel: v}},
		&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Target: "/anon"}}}, nil, nil, v+"-anon")
	must(t, "ContainerCreate", err)
	ins, err := c.ContainerInspect(ctx, resp.ID)
	must(t, "ContainerInspect", err)
	if len(ins.Mounts) != 1 || ins.Mounts[0].Name == "" {
		t.Fatalf("mounts %+v", ins.Mounts)
	}
	anon := ins.Mounts[0].Name
	must(t, "Remove", rt.Remove(ctx, resp.ID))
	if _, err := c.VolumeInspect(ctx, anon); err == nil {
		t.Errorf("anonymous volume %s survived Remove", anon)
		c.VolumeRemove(ctx, anon, true)
	}
}
