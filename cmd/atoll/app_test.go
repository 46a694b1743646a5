package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// devServerNoAgent runs `atoll dev --no-agent` in this process and returns
// its gRPC address and admin token.
func devServerNoAgent(t *testing.T) (addr, token string) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--no-agent", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0"}, &out, &errOut)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := grpcBannerRe.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("atoll dev exited early: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no banner from atoll dev within 30s\nstdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
		}
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("atoll dev did not stop within 30s of cancel")
		}
	})
	b, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return addr, strings.TrimSpace(string(b))
}

// miniAgent registers a node over a real AgentService session, heartbeats at
// the period the server asks for, and reports every assignment RUNNING.
func miniAgent(t *testing.T, addr, token, name string) (nodeID string, assignments <-chan *atollv1.Assignments) {
	t.Helper()
	return miniAgentCreds(t, addr, token, name, insecure.NewCredentials())
}

// miniAgentCreds is miniAgent dialing with creds; serve are the options of
// its log service (TLS).
func miniAgentCreds(t *testing.T, addr, token, name string, creds credentials.TransportCredentials, serve ...grpc.ServerOption) (nodeID string, assignments <-chan *atollv1.Assignments) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token))
	t.Cleanup(func() { cancel(); conn.Close() })
	stream, err := atollv1.NewAgentServiceClient(conn).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sendMu sync.Mutex
	send := func(m *atollv1.AgentMessage) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logSrv := grpc.NewServer(serve...)
	atollv1.RegisterAgentLogServiceServer(logSrv, fakeLogs{})
	go logSrv.Serve(lis)
	t.Cleanup(logSrv.Stop)
	res := &atollv1.Resources{Cpu: 4000, Memory: 8192, Storage: 100000}
	if err := send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Register{Register: &atollv1.RegisterNode{
		Name: name, Capacity: res, Allocatable: res, Address: "127.0.0.1", Labels: map[string]string{"zone": "a"},
		AgentAddress: lis.Addr().String()}}}); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	nodeID = first.GetSession().GetNodeId()
	period := time.Duration(first.GetSession().GetHeartbeatPeriodMs()) * time.Millisecond
	if period <= 0 {
		period = time.Second
	}
	go func() {
		tick := time.NewTicker(period / 2)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Heartbeat{Heartbeat: &atollv1.Heartbeat{}}}) != nil {
					return
				}
			}
		}
	}()
	ch := make(chan *atollv1.Assignments, 100)
	go func() {
		defer close(ch)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			a := m.GetAssignments()
			if a == nil {
				continue
			}
			select {
			case ch <- a:
			default:
			}
			var st []*atollv1.InstanceStatus
			for _, u := range a.Upsert {
				if strings.HasPrefix(u.Image, "missing:") {
					st = append(st, &atollv1.InstanceStatus{InstanceId: u.InstanceId, State: atollv1.InstanceState_INSTANCE_ERROR,
						Error: "image " + u.Image + " not found on " + name})
					continue
				}
				st = append(st, &atollv1.InstanceStatus{InstanceId: u.InstanceId, State: atollv1.InstanceState_INSTANCE_RUNNING,
					ContainerId: "c-" + u.InstanceId, Address: "127.0.0.1:9"})
			}
			if len(st) > 0 {
				_ = send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Status{Status: &atollv1.StatusReport{Instances: st}}})
			}
		}
	}()
	return nodeID, ch
}

// fakeLogs is the agent's log endpoint: two lines per instance, and with
// follow one more line, then it waits for the caller to go.
type fakeLogs struct {
	atollv1.UnimplementedAgentLogServiceServer
}

func (fakeLogs) InstanceLogs(req *atollv1.InstanceLogsRequest, stream grpc.ServerStreamingServer[atollv1.LogLine]) error {
	if req.Follow {
		if err := stream.Send(&atollv1.LogLine{Timestamp: timestamppb.Now(), InstanceId: req.InstanceId, Stream: "stdout", Message: "followed line"}); err != nil {
			return err
		}
		<-stream.Context().Done()
		return nil
	}
	base := time.Now().Add(-time.Minute)
	for i, m := range []string{"listening on :80", "GET / 200"} {
		if err := stream.Send(&atollv1.LogLine{Timestamp: timestamppb.New(base.Add(time.Duration(i) * time.Second)), InstanceId: req.InstanceId, Stream: "stdout", Message: m}); err != nil {
			return err
		}
	}
	return nil
}

func TestCLIApps(t *testing.T) {
	t.Setenv("ATOLL_TOKEN", "")
	t.Setenv("ATOLL_ADDR", "")
	addr, token := devServerNoAgent(t)
	cli := cliRunner{t: t, addr: addr, token: token}
	nodeID, assignments := miniAgent(t, addr, token, "host-1")

	cli.ok("env", "create", "demo", "--cpu", "2", "--memory", "2Gi", "--storage", "10Gi")

	// volumes, variable sets, files
	mustContain(t, "volume create", cli.ok("volume", "create", "data", "--env", "demo", "--size", "1Gi"), "created volume data", "vol_", "1024MB")
	mustContain(t, "volume list", cli.ok("volume", "list", "--env", "demo"), "NAME", "SIZE", "data", "1024MB")
	mustContain(t, "varset create", cli.ok("varset", "create", "cfg", "--env", "demo", "--var", "GREETING=hi", "--secret", "API_KEY=s3cret"),
		"created variable set cfg", "2 variable(s)")
	out := cli.ok("varset", "get", "cfg", "--env", "demo")
	mustContain(t, "varset get", out, "GREETING", "hi", "API_KEY", "********")
	if strings.Contains(out, "s3cret") {
		t.Fatalf("varset get shows a secret:\n%s", out)
	}
	mustContain(t, "varset list", cli.ok("varset", "list", "--env", "demo"), "cfg", "VARIABLES")
	mustContain(t, "file create", cli.ok("file", "create", "conf", "--env", "demo", "--text", "hello file"), "created file conf", "10 bytes")
	mustContain(t, "file list", cli.ok("file", "list", "--env", "demo"), "conf", "10")
	if got := cli.ok("file", "get", "conf", "--env", "demo", "--content"); got != "hello file" {
		t.Fatalf("file get --content: %q", got)
	}

	// create with every kind of mount and wait until it runs
	out = cli.ok("app", "create", "web", "--env", "demo", "--image", "hello:1", "--cpu", "100m", "--memory", "128Mi",
		"--port", "80", "--port", "9090/udp:metrics", "--public", "--volume", "data:/data", "--varset", "cfg", "--file", "conf:/etc/conf:1000", "--wait")
	t.Logf("app create --wait:\n%s", out)
	mustContain(t, "app create --wait", out, "created app web", "✓ scheduled", "on host-1", "✓ started (1/1 running)", "http://web-demo.localhost:7080/")
	got := false
	for !got {
		select {
		case a, ok := <-assignments:
			if !ok {
				t.Fatal("agent session ended")
			}
			for _, u := range a.Upsert {
				if u.AppName == "web" {
					got = true
					if u.Image != "hello:1" || u.Env["GREETING"] != "hi" || u.Env["API_KEY"] != "s3cret" || len(u.Files) != 1 || len(u.Volumes) != 1 || u.PublicPort != 80 {
						t.Fatalf("assignment: %v", u)
					}
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no assignment for web")
		}
	}

	out = cli.ok("app", "get", "web", "--env", "demo")
	t.Logf("app get:\n%s", out)
	mustContain(t, "app get", out, "hello:1", "RUNNING (1/1 running)", "INSTANCE", "NODE", "RESTARTS", "LAST ERROR", "host-1",
		"http://web-demo.localhost:7080/ -> port 80", "data at /data", "conf at /etc/conf (owner 1000)", "9090/UDP (metrics)")
	mustContain(t, "app list", cli.ok("app", "list", "--env", "demo"), "NAME", "IMAGE", "REPLICAS", "RUNNING", "STATE", "URL",
		"web", "hello:1", "1/1", "http://web-demo.localhost:7080/")

	// an image change rolls: --wait reports the new version's instances only
	// (the old one runs on meanwhile, and is not "started")
	out = cli.ok("app", "update", "web", "--env", "demo", "--image", "hello:2", "--wait")
	t.Logf("app update --image --wait:\n%s", out)
	mustContain(t, "app update --image --wait", out, "updated app web to version 2 (image)", "✓ scheduled", "✓ started (1/1 running)", "RUNNING")
	if strings.Count(out, "✓ started") != 1 || strings.Index(out, "✓ started") < strings.Index(out, "✓ scheduled") {
		t.Fatalf("app update --image --wait: want one \"started\", after \"scheduled\":\n%s", out)
	}

	// update: only the flags given change
	out = cli.ok("app", "update", "web", "--env", "demo", "--replicas", "2", "--wait")
	t.Logf("app update --wait:\n%s", out)
	mustContain(t, "app update --wait", out, "updated app web to version 3 (replicas)", "(2/2 running)", "http://web-demo.localhost:7080/")
	var app struct {
		Replicas         int `json:"replicas"`
		ResourceRequests struct {
			CPU    string `json:"cpu"`
			Memory string `json:"memory"`
		} `json:"resourceRequests"`
		Status struct {
			State     string `json:"state"`
			Running   int    `json:"running"`
			Instances []struct {
				NodeID string `json:"nodeId"`
			} `json:"instances"`
		} `json:"status"`
	}
	cli.json(&app, "app", "get", "web", "--env", "demo")
	if app.Replicas != 2 || app.Status.Running != 2 || app.Status.State != "RUNNING" || app.ResourceRequests.CPU != "100m" || app.Status.Instances[0].NodeID != nodeID {
		t.Fatalf("app get -o json after update: %+v", app)
	}

	// logs: every replica merged by time; -f until the context ends
	out = cli.ok("app", "logs", "web", "--env", "demo", "--since", "10m")
	t.Logf("app logs:\n%s", out)
	if strings.Count(out, "listening on :80") != 2 || strings.Count(out, "GET / 200") != 2 {
		t.Fatalf("app logs: want two lines from each of two replicas:\n%s", out)
	}
	testLogsFollow(t, cli)

	// an instance that cannot run: --wait stops with its error
	stdout, _, err := cli.run("app", "create", "broken", "--env", "demo", "--image", "missing:1", "--wait", "--timeout", "20s")
	if err == nil {
		t.Fatalf("app create --wait of a missing image succeeded:\n%s", stdout)
	}
	mustContain(t, "app create --wait, missing image", stdout+err.Error(), "✗", "image missing:1 not found on host-1", "see `atoll app get broken --env demo`")
	mustContain(t, "app get broken", cli.ok("app", "get", "broken", "--env", "demo"), "ERROR", "image missing:1 not found on host-1")
	cli.ok("app", "delete", "broken", "--env", "demo")

	// -f: the API's JSON body; flags override it
	body := filepath.Join(t.TempDir(), "app.json")
	if err := os.WriteFile(body, []byte(`{"name":"api","source":{"image":{"name":"hello","tag":"2"}},"resourceRequests":{"cpu":"50m","memory":"64Mi"},"ports":[{"number":8080}],"publicEndpoint":{"appPort":8080},"extra":"ignored"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out = cli.ok("app", "create", "-f", body, "--env", "demo", "--replicas", "1", "--wait")
	mustContain(t, "app create -f", out, "created app api", "http://api-demo.localhost:7080/")
	cli.ok("app", "delete", "api", "--env", "demo")

	// nodes
	out = cli.ok("node", "list")
	t.Logf("node list:\n%s", out)
	mustContain(t, "node list", out, "NAME", "STATUS", "CPU", "MEM", "INSTANCES", "LAST HEARTBEAT", "host-1", nodeID, "READY", "200m/4000m", "256MB/8192MB")
	mustContain(t, "node get", cli.ok("node", "get", "host-1"), nodeID, "zone=a", "Allocatable:", "cpu 4000m")
	mustContain(t, "node drain", cli.ok("node", "drain", "host-1"), "DRAINING")
	var node struct {
		Status string `json:"status"`
		Drain  bool   `json:"drain"`
	}
	cli.json(&node, "node", "get", nodeID)
	if node.Status != "NODE_DRAINING" || !node.Drain {
		t.Fatalf("node get after drain: %+v", node)
	}
	out = cli.ok("node", "get", "host-1")
	t.Logf("node get while draining:\n%s", out)
	mustContain(t, "node get while draining", out, "DRAINING", "draining")
	mustContain(t, "node undrain", cli.ok("node", "undrain", "host-1"), "READY")
	cli.json(&node, "node", "get", "host-1")
	if node.Status != "NODE_READY" || node.Drain {
		t.Fatalf("node get after undrain: %+v", node)
	}

	// a mounted volume cannot go; once the app is gone it can
	err = cli.fails("volume", "delete", "data", "--env", "demo")
	t.Logf("volume delete while mounted: %v", err)
	mustContain(t, "volume delete while mounted", err.Error(), "web", "mounted")
	mustContain(t, "app delete", cli.ok("app", "delete", "web", "--env", "demo"), "deleted app web")
	if out := cli.ok("app", "list", "--env", "demo"); strings.Contains(out, "hello:1") {
		t.Fatalf("app list after delete:\n%s", out)
	}
	mustContain(t, "volume delete", cli.ok("volume", "delete", "data", "--env", "demo"), "deleted volume data")
	cli.ok("varset", "delete", "cfg", "--env", "demo")
	cli.ok("file", "delete", "conf", "--env", "demo")

	// a join token for agents
	out = cli.ok("token", "create", "--join-agent")
	t.Logf("token create --join-agent:\n%s", out)
	mustContain(t, "token create --join-agent", out, "node:agent", "atl_", "atoll agent --servers ", " --join-token atl_")

	// errors and help
	err = cli.fails("app", "get", "web")
	mustContain(t, "no --env", err.Error(), "--env is required")
	err = cli.fails("app", "get", "nope", "--env", "demo")
	mustContain(t, "unknown app", err.Error(), "not found")
	err = cli.fails("app", "create", "x", "--env", "demo", "--image", "a:1", "--port", "99999")
	mustContain(t, "bad port", err.Error(), "--port")
	mustContain(t, "app create --help", cli.ok("app", "create", "--help"), "--env", "--image", "--cpu", "--memory", "--port", "--public", "--volume", "--varset", "--file", "--wait", "--timeout")
}

func TestAppFlagParsing(t *testing.T) {
	for _, tc := range []struct{ in, name, tag string }{
		{"nginx", "nginx", "latest"}, {"hello:1", "hello", "1"}, {"reg:5000/a/b:2.1", "reg:5000/a/b", "2.1"}, {"reg:5000/a", "reg:5000/a", "latest"},
	} {
		n, tg, err := parseImage(tc.in)
		if err != nil || n != tc.name || tg != tc.tag {
			t.Errorf("parseImage(%q) = %q %q %v", tc.in, n, tg, err)
		}
	}
	for _, tc := range []struct {
		in   string
		want string
	}{{"80", "80//"}, {"53/udp", "53/UDP/"}, {"8080/tcp:http", "8080/TCP/http"}, {"9090:metrics", "9090//metrics"}} {
		p, err := parsePort(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join([]string{strconv.Itoa(int(p.Number)), p.Protocol, p.Name}, "/"); got != tc.want {
			t.Errorf("parsePort(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "x", "0", "70000", "80/sctp"} {
		if _, err := parsePort(bad); err == nil {
			t.Errorf("parsePort(%q): want an error", bad)
		}
	}
	fs := newTestFlagSet()
	var f appFlags
	f.register(fs, true)
	if _, err := parseInterspersed(fs, []string{"--port", "8080", "--public=8080", "--cpu", "0.25", "--memory", "1Gi"}); err != nil {
		t.Fatal(err)
	}
	app := &atollv1.App{}
	paths, err := f.apply(app, setFlags(fs), true)
	if err != nil {
		t.Fatal(err)
	}
	if app.PublicEndpoint.GetAppPort() != 8080 || app.ResourceRequests.Cpu != "250m" || app.ResourceRequests.Memory != "1024Mi" || len(paths) != 3 {
		t.Fatalf("apply: %v paths %v", app, paths)
	}
}

func testLogsFollow(t *testing.T, cli cliRunner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"app", "logs", "web", "--env", "demo", "-f", "--addr", cli.addr, "--token", cli.token}, &out, &errOut)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(out.String(), "followed line") < 2 {
		select {
		case err := <-done:
			t.Fatalf("app logs -f ended early: %v\n%s%s", err, out.String(), errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("app logs -f: no followed lines within 15s:\n%s%s", out.String(), errOut.String())
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("app logs -f returned %v after cancel, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("app logs -f did not return after cancel")
	}
}

func TestHealthFlags(t *testing.T) {
	apply := func(create bool, app *atollv1.App, args ...string) ([]string, error) {
		fs := newTestFlagSet()
		var f appFlags
		f.register(fs, create)
		if _, err := parseInterspersed(fs, args); err != nil {
			t.Fatal(err)
		}
		return f.apply(app, setFlags(fs), create)
	}
	app := &atollv1.App{}
	paths, err := apply(true, app, "--port", "8080", "--health-path", "/healthz", "--health-port", "8080", "--health-interval", "5s")
	if err != nil {
		t.Fatal(err)
	}
	if hc := app.HealthCheck; hc.GetHttpPath() != "/healthz" || hc.GetPort() != 8080 || hc.GetIntervalSeconds() != 5 || !slices.Contains(paths, "healthCheck") {
		t.Fatalf("health check %v paths %v", hc, paths)
	}
	if _, err := apply(false, app, "--health-interval", "1500ms"); err == nil {
		t.Fatal("--health-interval 1500ms: want an error (whole seconds)")
	}
	if _, err := apply(false, app, "--health-path="); err != nil || app.HealthCheck != nil {
		t.Fatalf("--health-path= keeps %v (%v)", app.HealthCheck, err)
	}
	if got := changedWhat([]string{"healthCheck"}); got != "health check" {
		t.Errorf("changedWhat: %q", got)
	}
	a := &atollv1.App{SpecVersion: 1, HealthCheck: &atollv1.HealthCheck{HttpPath: "/h"}}
	run := atollv1.InstanceState_INSTANCE_RUNNING
	for _, tc := range []struct {
		in   *atollv1.Instance
		want string
	}{
		{&atollv1.Instance{State: run, AppVersion: 1}, "pending"},
		{&atollv1.Instance{State: run, AppVersion: 1, Healthy: true}, "healthy"},
		{&atollv1.Instance{State: run, AppVersion: 1, HealthMessage: "GET /h: 503"}, "unhealthy: GET /h: 503"},
		{&atollv1.Instance{State: atollv1.InstanceState_INSTANCE_FAILED, AppVersion: 1}, "-"},
	} {
		if got := instanceHealth(a, tc.in); got != tc.want {
			t.Errorf("instanceHealth(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
