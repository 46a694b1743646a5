package agent_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/agent"
	"github.com/atollhq/atoll/agent/agenttest"
	"github.com/atollhq/atoll/internal/tlsutil"
	"github.com/atollhq/atoll/internal/tlsutil/tlstest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/runtime"
	"github.com/atollhq/atoll/runtime/fake"
)

const (
	img  = "web:1"
	wait = 10 * time.Second
)

var (
	running = agenttest.InState(atollv1.InstanceState_INSTANCE_RUNNING)
	stopped = agenttest.InState(atollv1.InstanceState_INSTANCE_STOPPED)
)

type testAgent struct {
	*agent.Agent
	reg  *prometheus.Registry
	stop func()
}

func testConfig(t *testing.T, dataDir string, servers ...string) agent.Config {
	cfg := agent.DefaultConfig()
	cfg.Servers = servers
	cfg.JoinToken = "join-token"
	cfg.DataDir = dataDir
	cfg.Name = "host-a"
	cfg.RouterAddr, cfg.ListenAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.CPU, cfg.MemoryMB, cfg.StorageMB = 4000, 8192, 100_000
	cfg.PollInterval = 20 * time.Millisecond
	cfg.RestartBackoffMin, cfg.RestartBackoffMax = 50*time.Millisecond, 400*time.Millisecond
	cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	cfg.StatusBatch = 20 * time.Millisecond
	cfg.StopTimeout = time.Second
	cfg.ShutdownDelay = 0 // TestShutdownDelay sets one
	cfg.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

// tWriter sends logs to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// start runs an agent until the test ends (or stop is called).
func start(t *testing.T, cfg agent.Config, rt runtime.Runtime) *testAgent {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	a, err := agent.New(cfg, rt)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var stopped bool
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Errorf("Run did not return within %v of cancel", wait)
		}
	}
	t.Cleanup(stop)
	return &testAgent{Agent: a, reg: reg, stop: stop}
}

func newFake() *fake.Fake {
	f := fake.New()
	f.SetClock(time.Now)
	f.AddImage(img, fake.Image{Passwd: []byte("root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"), Group: []byte("root:x:0:\napp:x:1000:\n")})
	return f
}

func assignment(id string) *atollv1.Assignment {
	return &atollv1.Assignment{
		InstanceId: id, AppId: "app-1", AppName: "web", EnvId: "env-1", EnvSlug: "demo", OrgId: "org-1",
		AppVersion: 1, Image: img, Running: true,
		Command: []string{"/web"}, Args: []string{"-c", "echo Hello World"},
		Env:        map[string]string{"GREETING": "hi"},
		Files:      []*atollv1.ContainerFile{{MountPath: "/etc/app.conf", Content: []byte("x=1"), Owner: "1000:1000"}},
		Volumes:    []*atollv1.ContainerVolume{{VolumeId: "vol-1", Name: "atoll-vol-" + id, Path: "/data", SizeMb: 100}},
		Ports:      []*atollv1.Port{{Name: "http", Number: 8080, Protocol: "TCP"}},
		Resources:  &atollv1.Resources{Cpu: 250, Memory: 128, Storage: 1024},
		PublicPort: 8080,
	}
}

func TestRegisterAndRunFullSet(t *testing.T) {
	srv := agenttest.New(t)
	srv.SetAssignments(assignment("i1"), assignment("i2"))
	f := newFake()
	dir := t.TempDir()
	a := start(t, testConfig(t, dir, srv.Addr), f)

	t0 := time.Now()
	st := srv.AwaitStatus(t, wait, "i1", "running", running)
	srv.AwaitStatus(t, wait, "i2", "running", running)
	t.Logf("full set -> RUNNING in %v", time.Since(t0))

	regs := srv.Registrations()
	if len(regs) != 1 || regs[0].NodeId != "" || regs[0].Name != "host-a" {
		t.Fatalf("registrations %v", regs)
	}
	r := regs[0]
	if r.Capacity.Cpu != 4000 || r.Allocatable.Cpu != 3900 || r.Allocatable.Memory != 8192-256 || r.RouterAddress != a.RouterAddr() || r.AgentAddress != a.AgentAddr() || r.Address != "127.0.0.1" {
		t.Errorf("registration %v", r)
	}
	if a.NodeID() != "node-1" {
		t.Errorf("NodeID() = %q", a.NodeID())
	}
	b, err := os.ReadFile(filepath.Join(dir, "node-id"))
	if err != nil || strings.TrimSpace(string(b)) != "node-1" {
		t.Errorf("node id file: %q %v", b, err)
	}

	info, err := f.Inspect(context.Background(), "atoll-i1")
	if err != nil {
		t.Fatal(err)
	}
	if st.ContainerId != info.ID || st.StartedAt == nil || st.Address != "127.0.0.1:"+itoa(info.Ports[0].HostPort) {
		t.Errorf("status %v vs container %+v", st, info)
	}
	spec, _ := f.Spec("atoll-i1")
	if spec.Labels[runtime.LabelAlloc] != "i1" || spec.Labels[runtime.LabelApp] != "app-1" || spec.Labels[runtime.LabelEnv] != "env-1" || spec.Labels[runtime.LabelOrg] != "org-1" {
		t.Errorf("labels %v", spec.Labels)
	}
	if spec.Env["GREETING"] != "hi" || len(spec.Args) != 2 || spec.Args[1] != "echo Hello World" || spec.Command[0] != "/web" {
		t.Errorf("spec %+v", spec)
	}
	if spec.Limits.MilliCPU != 250 || spec.Limits.MemoryBytes != 128<<20 || spec.Limits.StorageMB != 1024 {
		t.Errorf("limits %+v", spec.Limits)
	}
	if len(spec.Ports) != 1 || !spec.Ports[0].Publish || spec.Ports[0].HostIP != "127.0.0.1" || spec.Ports[0].HostPort != 0 {
		t.Errorf("ports %+v", spec.Ports)
	}
	files, _ := f.Files("atoll-i1")
	if len(files) != 1 || files[0].UID != 1000 || files[0].GID != 1000 || string(files[0].Content) != "x=1" {
		t.Errorf("files %+v", files)
	}
	vols, _ := f.ListVolumes(context.Background(), map[string]string{"atoll.volume": "vol-1"})
	if len(vols) != 2 {
		t.Errorf("volumes %+v", vols)
	}
	srv.Await(t, wait, "heartbeats", func() bool { return srv.Heartbeats() >= 1 })
	if got := testutil.ToFloat64(mustCounter(t, a.reg, "atoll_agent_container_starts_total")); got != 2 {
		t.Errorf("starts metric %v, want 2", got)
	}
}

func TestDiffsAndStop(t *testing.T) {
	srv := agenttest.New(t)
	srv.SetAssignments(assignment("i1"), assignment("i2"))
	srv.SetRoutes(map[string][]string{"web-demo.localhost": {"127.0.0.1:1"}})
	f := newFake()
	a := start(t, testConfig(t, t.TempDir(), srv.Addr), f)
	srv.AwaitStatus(t, wait, "i2", "running", running)
	first := srv.AwaitStatus(t, wait, "i1", "running", running).ContainerId

	srv.Upsert(assignment("i3"))
	srv.Remove("i2")
	srv.AwaitStatus(t, wait, "i3", "running", running)
	awaitGone(t, f, "atoll-i2")

	off := assignment("i1")
	off.Running = false
	srv.Upsert(off)
	st := srv.AwaitStatus(t, wait, "i1", "stopped", stopped)
	info, err := f.Inspect(context.Background(), "atoll-i1")
	if err != nil || info.Running() || st.ContainerId != first {
		t.Fatalf("stopped instance: %+v %v (status %v)", info, err, st)
	}
	srv.Upsert(assignment("i1"))
	st = srv.AwaitStatus(t, wait, "i1", "running again", running)
	if st.ContainerId != first || st.Restarts != 0 {
		t.Errorf("restarted instance %v; want same container %s, 0 restarts", st, first)
	}

	// A new app version replaces the container.
	v2 := assignment("i1")
	v2.AppVersion = 2
	srv.Upsert(v2)
	st = srv.AwaitStatus(t, wait, "i1", "replaced", func(s *atollv1.InstanceStatus) bool {
		return s.State == atollv1.InstanceState_INSTANCE_RUNNING && s.ContainerId != first
	})
	if got := a.Router().Routes()["web-demo.localhost"]; len(got) != 1 {
		t.Errorf("routes %v", a.Router().Routes())
	}
	srv.SetRoutes(map[string][]string{"other.localhost": {"127.0.0.1:2", "127.0.0.1:3"}})
	srv.Await(t, wait, "routes replaced", func() bool {
		r := a.Router().Routes()
		return len(r) == 1 && len(r["other.localhost"]) == 2
	})
}

func TestAdoptionAfterRestart(t *testing.T) {
	srv := agenttest.New(t)
	srv.SetAssignments(assignment("keep"), assignment("drop"))
	f := newFake()
	dir := t.TempDir()
	a1 := start(t, testConfig(t, dir, srv.Addr), f)
	kept := srv.AwaitStatus(t, wait, "keep", "running", running).ContainerId
	srv.AwaitStatus(t, wait, "drop", "running", running)
	a1.stop()

	// Containers keep running without the agent.
	if info, err := f.Inspect(context.Background(), "atoll-keep"); err != nil || !info.Running() {
		t.Fatalf("after agent stop: %+v %v", info, err)
	}
	// One more container nobody claims.
	ghost := runtime.ContainerSpec{Name: "atoll-ghost", Image: img, Labels: map[string]string{runtime.LabelAlloc: "ghost"}}
	if _, err := f.Create(context.Background(), ghost); err != nil {
		t.Fatal(err)
	}
	srv.SetAssignments(assignment("keep"))

	start(t, testConfig(t, dir, srv.Addr), f)
	srv.Await(t, wait, "second registration", func() bool { return len(srv.Registrations()) == 2 })
	if id := srv.Registrations()[1].NodeId; id != "node-1" {
		t.Errorf("second registration node id %q, want the persisted node-1", id)
	}
	awaitGone(t, f, "atoll-drop")
	awaitGone(t, f, "atoll-ghost")
	st := srv.AwaitStatus(t, wait, "keep", "running", running)
	if st.ContainerId != kept {
		t.Errorf("keep: container %s, want the adopted %s", st.ContainerId, kept)
	}
	cs, _ := f.List(context.Background(), nil)
	if len(cs) != 1 {
		t.Errorf("containers after adoption: %+v", cs)
	}
}

func TestCrashRestartsWithBackoff(t *testing.T) {
	srv := agenttest.New(t)
	f := newFake()
	f.SetBehavior("atoll-crash", fake.Behavior{Exit: true, ExitCode: 3})
	f.SetBehavior("atoll-oom", fake.Behavior{OOM: true})
	srv.SetAssignments(assignment("crash"), assignment("oom"))
	a := start(t, testConfig(t, t.TempDir(), srv.Addr), f)
	t0 := time.Now()
	st := srv.AwaitStatus(t, wait, "crash", "3 restarts", func(s *atollv1.InstanceStatus) bool { return s.Restarts >= 3 })
	if el := time.Since(t0); el < (50+100)*time.Millisecond*8/10 {
		t.Errorf("3 restarts in %v: no backoff", el)
	}
	if !strings.Contains(st.Error, "exited with code 3") {
		t.Errorf("error %q", st.Error)
	}
	st = srv.AwaitStatus(t, wait, "oom", "oom failure", func(s *atollv1.InstanceStatus) bool { return s.Restarts >= 1 })
	if !strings.Contains(st.Error, "OOM killed at 128MB limit") {
		t.Errorf("oom error %q", st.Error)
	}
	sawFailed := false
	for _, h := range srv.History("crash") {
		sawFailed = sawFailed || h.State == atollv1.InstanceState_INSTANCE_FAILED
	}
	if !sawFailed {
		t.Error("FAILED never reported")
	}

	// A running container that exits is noticed by the poll and restarted.
	srv.Upsert(assignment("ok"))
	srv.AwaitStatus(t, wait, "ok", "running", running)
	if err := f.Exit("atoll-ok", 1); err != nil {
		t.Fatal(err)
	}
	st = srv.AwaitStatus(t, wait, "ok", "restarted", func(s *atollv1.InstanceStatus) bool {
		return s.State == atollv1.InstanceState_INSTANCE_RUNNING && s.Restarts == 1
	})
	if got := testutil.ToFloat64(mustCounter(t, a.reg, "atoll_agent_container_failures_total")); got < 4 {
		t.Errorf("failures metric %v", got)
	}
}

func TestMissingImage(t *testing.T) {
	srv := agenttest.New(t)
	as := assignment("i1")
	as.Image = "nosuch/image:9"
	srv.SetAssignments(as)
	start(t, testConfig(t, t.TempDir(), srv.Addr), newFake())
	st := srv.AwaitStatus(t, wait, "i1", "error", agenttest.InState(atollv1.InstanceState_INSTANCE_ERROR))
	if !strings.Contains(st.Error, `"nosuch/image:9"`) {
		t.Errorf("error %q does not name the image", st.Error)
	}
}

func TestStorageLimit(t *testing.T) {
	srv := agenttest.New(t)
	srv.UsageMs = 50
	as := assignment("i1")
	as.Resources.Storage = 10
	srv.SetAssignments(as)
	f := newFake()
	start(t, testConfig(t, t.TempDir(), srv.Addr), f)
	srv.AwaitStatus(t, wait, "i1", "running", running)
	if err := f.SetUsage("atoll-i1", fake.Usage{CPUMillicores: 120, MemoryMB: 42, Pids: 3, WritableLayerMB: 1}); err != nil {
		t.Fatal(err)
	}
	srv.Await(t, wait, "usage report", func() bool {
		for _, u := range srv.Usage() {
			if len(u.Instances) == 1 && u.Instances[0].Used.Cpu == 120 && u.Instances[0].Used.Memory == 42 && u.NodeUsed.Memory == 42 {
				return true
			}
		}
		return false
	})
	if err := f.SetVolumeSizeMB("atoll-vol-i1", 30); err != nil {
		t.Fatal(err)
	}
	st := srv.AwaitStatus(t, wait, "i1", "storage failure", agenttest.InState(atollv1.InstanceState_INSTANCE_FAILED))
	if st.Error != "storage limit exceeded (31 MB > 10 MB)" {
		t.Errorf("error %q", st.Error)
	}
	if info, _ := f.Inspect(context.Background(), "atoll-i1"); info.Running() {
		t.Error("container still running over its storage limit")
	}
}

func TestReconnectsToLeader(t *testing.T) {
	s1, s2 := agenttest.New(t), agenttest.New(t)
	s1.SetAssignments(assignment("i1"))
	s2.SetAssignments(assignment("i1"))
	f := newFake()
	a := start(t, testConfig(t, t.TempDir(), s1.Addr, "127.0.0.1:1"), f)
	first := s1.AwaitStatus(t, wait, "i1", "running", running).ContainerId

	// s1 steps down: it cuts the session and names s2 as the leader.
	s1.Refuse(codes.Unavailable, s2.Addr)
	s1.Kill(codes.Unavailable, s2.Addr)
	s2.Await(t, wait, "registration on s2", func() bool { return len(s2.Registrations()) == 1 })
	if id := s2.Registrations()[0].NodeId; id != "node-1" {
		t.Errorf("node id on s2 %q", id)
	}
	st := s2.AwaitStatus(t, wait, "i1", "running on s2", running)
	if st.ContainerId != first || st.Restarts != 0 {
		t.Errorf("after reconnect %v; want the same container %s", st, first)
	}
	if got := testutil.ToFloat64(mustCounter(t, a.reg, "atoll_agent_session_reconnects_total")); got < 1 {
		t.Errorf("reconnects metric %v", got)
	}
}

func TestInstanceLogs(t *testing.T) {
	srv := agenttest.New(t)
	srv.SetAssignments(assignment("i1"))
	f := newFake()
	a := start(t, testConfig(t, t.TempDir(), srv.Addr), f)
	srv.AwaitStatus(t, wait, "i1", "running", running)
	for _, l := range []string{"one", "two", "three"} {
		f.WriteLog("atoll-i1", runtime.Stdout, l)
	}
	conn, err := grpc.NewClient(a.AgentAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := atollv1.NewAgentLogServiceClient(conn)
	read := func(ctx context.Context, req *atollv1.InstanceLogsRequest) ([]string, error) {
		ctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		s, err := cl.InstanceLogs(ctx, req)
		if err != nil {
			return nil, err
		}
		var out []string
		for {
			l, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, l.Message)
		}
	}
	if _, err := read(context.Background(), &atollv1.InstanceLogsRequest{InstanceId: "i1"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("without secret: %v", err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer agent-secret")
	got, err := read(ctx, &atollv1.InstanceLogsRequest{InstanceId: "i1", Lines: 2})
	if err != nil || strings.Join(got, ",") != "two,three" {
		t.Errorf("logs %q %v", got, err)
	}
	if _, err := read(ctx, &atollv1.InstanceLogsRequest{InstanceId: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown instance: %v", err)
	}

	// Follow: a line written later arrives on the open stream.
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	fs, err := cl.InstanceLogs(fctx, &atollv1.InstanceLogsRequest{InstanceId: "i1", Lines: 1, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := fs.Recv(); err != nil || l.Message != "three" || l.InstanceId != "i1" || l.Stream != "stdout" {
		t.Fatalf("first followed line %v %v", l, err)
	}
	f.WriteLog("atoll-i1", runtime.Stderr, "four")
	if l, err := fs.Recv(); err != nil || l.Message != "four" || l.Stream != "stderr" {
		t.Fatalf("followed line %v %v", l, err)
	}
}

func TestRuntimeUnreachableAtStart(t *testing.T) {
	srv := agenttest.New(t)
	srv.SetAssignments(assignment("i1"))
	f := newFake()
	for range 5 {
		f.FailNext(fake.OpList, errors.New("cannot connect to the Docker daemon"))
	}
	start(t, testConfig(t, t.TempDir(), srv.Addr), f)
	srv.AwaitStatus(t, wait, "i1", "running once the runtime answers", running)
}

// The runtime's probe containers that an agent which died mid-lookup left
// behind are removed when the next one starts (only those of its
// ContainerLabels), and again after a full set if that failed.
func TestRemovesStaleProbes(t *testing.T) {
	mine := map[string]string{"atoll.test": "mine"}
	for _, failFirst := range []bool{false, true} {
		srv := agenttest.New(t)
		srv.SetAssignments(assignment("i1"))
		f := newFake()
		// Left by an earlier process of this agent (same data dir, same
		// agent id), by another agent with the same labels, and by an agent
		// of other labels.
		f.LeaveProbe(map[string]string{"atoll.test": "mine", agent.LabelAgent: "a1"})
		f.LeaveProbe(map[string]string{"atoll.test": "mine", agent.LabelAgent: "a1", runtime.LabelApp: "app-1"})
		f.LeaveProbe(map[string]string{"atoll.test": "mine", agent.LabelAgent: "a2"})
		f.LeaveProbe(map[string]string{"atoll.test": "other", agent.LabelAgent: "a1"})
		if failFirst {
			f.FailNext(fake.OpRemoveProbes, errors.New("engine busy"))
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "agent-id"), []byte("a1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, dir, srv.Addr)
		cfg.ContainerLabels = mine
		a := start(t, cfg, f)
		srv.AwaitStatus(t, wait, "i1", "running", running)
		srv.Await(t, wait, "stale probes removed", func() bool { return len(f.Probes()) == 2 })
		for _, left := range f.Probes() {
			if left["atoll.test"] == "mine" && left[agent.LabelAgent] == "a1" {
				t.Fatalf("failFirst=%v: probes left %v, want only the other agents'", failFirst, f.Probes())
			}
		}
		a.stop()
	}
}

func TestConfigValidate(t *testing.T) {
	c := agent.DefaultConfig()
	c.DataDir = "relative"
	c.BindIP = "nope"
	c.ReserveCPU = -1
	err := c.Validate()
	if !errors.Is(err, agent.ErrInvalidConfig) {
		t.Fatalf("Validate: %v", err)
	}
	for _, want := range []string{"servers", "join token", "relative", "bind IP", "reserve cpu"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q: %v", want, err)
		}
	}
}

func TestCapacityDetection(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), "127.0.0.1:1")
	cfg.CPU, cfg.MemoryMB, cfg.StorageMB = 0, 0, 0
	cfg.StorageRoot = cfg.DataDir
	a, err := agent.New(cfg, newFake())
	if err != nil {
		t.Fatal(err)
	}
	c, al := a.Capacity()
	if c.Cpu < 1000 || c.Memory < 256 || c.Storage < 1 || al.Cpu != c.Cpu-100 {
		t.Errorf("capacity %v allocatable %v", c, al)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.Run(ctx) // closes the listeners
}

func awaitGone(t *testing.T, f *fake.Fake, name string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		if _, err := f.Inspect(context.Background(), name); errors.Is(err, runtime.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still there after %v", name, wait)
		}
		time.Sleep(5 * time.Millisecond) // polling the fake, which has no watch
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			v := mf.GetMetric()[0].GetCounter().GetValue()
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
			c.Add(v)
			return c
		}
	}
	t.Fatalf("metric %s not registered", name)
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSkipsDeadAndSilentServers: a server that refuses connections and one
// that accepts TCP but never answers are both left behind within the RPC
// timeout, and the agent registers with the next one.
func TestSkipsDeadAndSilentServers(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptDone := make(chan struct{})
	var held []net.Conn // open, never answered
	defer func() {
		silent.Close()
		<-acceptDone
		for _, c := range held {
			c.Close()
		}
	}()
	go func() {
		defer close(acceptDone)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	srv := agenttest.New(t)
	srv.SetAssignments(assignment("i1"))
	cfg := testConfig(t, t.TempDir(), deadAddr, silent.Addr().String(), srv.Addr)
	cfg.RPCTimeout = 300 * time.Millisecond
	start(t, cfg, newFake())
	t0 := time.Now()
	srv.AwaitStatus(t, wait, "i1", "running", running)
	t.Logf("registered past a dead and a silent server in %v", time.Since(t0))
}

// TestSessionAndLogsOverTLS: the agent dials a TLS control plane with its
// CA, and serves its log service over TLS.
func TestSessionAndLogsOverTLS(t *testing.T) {
	files := tlstest.Generate(t)
	stls, err := tlsutil.ServerConfig(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := agenttest.NewTLS(t, stls)
	srv.SetAssignments(assignment("i1"))
	f := newFake()
	cfg := testConfig(t, t.TempDir(), srv.Addr)
	cfg.TLSCA, cfg.TLSCert, cfg.TLSKey = files.CA, files.Cert, files.Key
	a := start(t, cfg, f)
	srv.AwaitStatus(t, wait, "i1", "running", running)
	f.WriteLog("atoll-i1", runtime.Stdout, "secret line")

	ctls, err := tlsutil.ClientConfig(files.CA, "")
	if err != nil {
		t.Fatal(err)
	}
	read := func(creds credentials.TransportCredentials) ([]string, error) {
		conn, err := grpc.NewClient(a.AgentAddr(), grpc.WithTransportCredentials(creds))
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+srv.Secret), wait)
		defer cancel()
		s, err := atollv1.NewAgentLogServiceClient(conn).InstanceLogs(ctx, &atollv1.InstanceLogsRequest{InstanceId: "i1"})
		if err != nil {
			return nil, err
		}
		var out []string
		for {
			l, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, l.Message)
		}
	}
	if got, err := read(credentials.NewTLS(ctls)); err != nil || len(got) != 1 || got[0] != "secret line" {
		t.Fatalf("logs over TLS: %q, %v", got, err)
	}
	if _, err := read(insecure.NewCredentials()); err == nil {
		t.Fatal("plaintext call to the agent's TLS log service succeeded")
	}

	// Without the CA, the agent cannot hold a session with a TLS server.
	srv2 := agenttest.NewTLS(t, stls)
	cfg2 := testConfig(t, t.TempDir(), srv2.Addr)
	plain := start(t, cfg2, newFake())
	// It tries and fails (each failed session is counted), and never
	// registers.
	for deadline := time.Now().Add(wait); testutil.ToFloat64(mustCounter(t, plain.reg, "atoll_agent_session_reconnects_total")) < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the plaintext agent made no session attempts")
		}
		time.Sleep(5 * time.Millisecond) // polling the counter, which has no watch
	}
	if n := len(srv2.Registrations()); n != 0 {
		t.Fatalf("a plaintext agent registered with a TLS server (%d registrations)", n)
	}
}

// TestTLSReload: the agent's log service serves a rotated certificate to
// new connections after ReloadTLS (what SIGHUP does); a broken file keeps it.
func TestTLSReload(t *testing.T) {
	files := tlstest.Generate(t)
	stls, err := tlsutil.ServerConfig(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := agenttest.NewTLS(t, stls)
	cfg := testConfig(t, t.TempDir(), srv.Addr)
	cfg.TLSCA, cfg.TLSCert, cfg.TLSKey = files.CA, files.Cert, files.Key
	a := start(t, cfg, newFake())
	ctls, err := tlsutil.ClientConfig(files.CA, "")
	if err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", a.AgentAddr(), ctls)
		if err != nil {
			t.Fatalf("TLS to the agent: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != "2" {
		t.Fatalf("serial %s, want 2", got)
	}
	tlstest.Reissue(t, files, 3)
	if err := a.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	if got := serial(); got != "3" {
		t.Fatalf("serial after ReloadTLS %s, want 3", got)
	}
	if err := os.WriteFile(files.Cert, []byte("broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.ReloadTLS(); err == nil || !strings.Contains(err.Error(), files.Cert) {
		t.Fatalf("ReloadTLS with a broken certificate: %v, want an error naming %s", err, files.Cert)
	}
	if got := serial(); got != "3" {
		t.Fatalf("serial after a failed reload %s, want 3", got)
	}
}

// An app that publishes a port it does not list in ports (the API allows
// it: publicEndpoint.appPort alone) still gets that port published, so the
// instance has an address and the router can reach it.
func TestPublicPortPublishedWithoutPortsList(t *testing.T) {
	srv := agenttest.New(t)
	as := assignment("i1")
	as.Ports = nil
	srv.SetAssignments(as)
	f := newFake()
	start(t, testConfig(t, t.TempDir(), srv.Addr), f)
	st := srv.AwaitStatus(t, wait, "i1", "running", running)
	spec, _ := f.Spec("atoll-i1")
	if len(spec.Ports) != 1 || spec.Ports[0].Number != 8080 || spec.Ports[0].Protocol != runtime.TCP || !spec.Ports[0].Publish {
		t.Fatalf("ports %+v, want 8080/tcp published", spec.Ports)
	}
	info, err := f.Inspect(context.Background(), "atoll-i1")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Ports) != 1 || st.Address != "127.0.0.1:"+itoa(info.Ports[0].HostPort) {
		t.Fatalf("address %q, container ports %+v", st.Address, info.Ports)
	}
}

// stopRecorder notes when each container was first asked to stop.
type stopRecorder struct {
	*fake.Fake
	mu    sync.Mutex
	stops map[string]time.Time
}

func (r *stopRecorder) Stop(ctx context.Context, id string, timeout time.Duration) error {
	r.mu.Lock()
	if _, ok := r.stops[id]; !ok {
		r.stops[id] = time.Now()
	}
	r.mu.Unlock()
	return r.Fake.Stop(ctx, id, timeout)
}

func (r *stopRecorder) stoppedAt(id string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stops[id]
}

// An instance that routers send requests to keeps running for
// ShutdownDelay after it is told to stop (the routers drop it in the same
// message), both when it is stopped and when it is removed; then it stops.
func TestShutdownDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	srv := agenttest.New(t)
	srv.SetAssignments(assignment("i1"), assignment("i2"))
	rec := &stopRecorder{Fake: newFake(), stops: map[string]time.Time{}}
	cfg := testConfig(t, t.TempDir(), srv.Addr)
	cfg.ShutdownDelay = delay
	start(t, cfg, rec)
	for _, id := range []string{"i1", "i2"} {
		if st := srv.AwaitStatus(t, wait, id, "running", running); st.Address == "" {
			t.Fatalf("%s runs without a routed address: %v", id, st)
		}
	}
	off := assignment("i1")
	off.Running = false
	asked := time.Now()
	srv.Upsert(off)
	srv.Remove("i2")
	srv.AwaitStatus(t, wait, "i1", "stopped", stopped)
	awaitGone(t, rec.Fake, "atoll-i2")
	for _, id := range []string{"atoll-i1", "atoll-i2"} {
		at := rec.stoppedAt(id)
		if at.IsZero() {
			t.Fatalf("%s was never stopped", id)
		}
		if d := at.Sub(asked); d < delay {
			t.Errorf("%s stopped %v after it was told to, before the shutdown delay %v", id, d, delay)
		}
	}
}

// Two agents on one engine (atoll dev next to a cluster's agent, parallel
// tests) leave each other's containers alone: each adopts and removes only
// what it labelled (and unlabelled containers of older versions).
func TestTwoAgentsOneEngine(t *testing.T) {
	f := newFake()
	dirOf := func(id string) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "agent-id"), []byte(id+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	srvA := agenttest.New(t)
	srvA.SetAssignments(assignment("i1"))
	start(t, testConfig(t, dirOf("a1"), srvA.Addr), f)
	srvA.AwaitStatus(t, wait, "i1", "running", running)
	if spec, _ := f.Spec("atoll-i1"); spec.Labels[agent.LabelAgent] != "a1" {
		t.Fatalf("container labels %v, want %s=a1", spec.Labels, agent.LabelAgent)
	}

	// A leftover of agent b1 (not assigned to it any more): b1 removes it,
	// which shows its adoption pass ran, and leaves a1's container alone.
	stale := runtime.ContainerSpec{Name: "atoll-stale", Image: img, Labels: map[string]string{runtime.LabelAlloc: "stale", agent.LabelAgent: "b1"}}
	if _, err := f.Create(context.Background(), stale); err != nil {
		t.Fatal(err)
	}
	srvB := agenttest.New(t)
	srvB.SetAssignments(assignment("i2"))
	start(t, testConfig(t, dirOf("b1"), srvB.Addr), f)
	srvB.AwaitStatus(t, wait, "i2", "running", running)
	awaitGone(t, f, "atoll-stale")
	if info, err := f.Inspect(context.Background(), "atoll-i1"); err != nil || !info.Running() {
		t.Fatalf("agent b1 touched agent a1's container: %+v %v", info, err)
	}
}
