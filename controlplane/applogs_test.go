package controlplane_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/agent"
	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/runtime"
	"github.com/atollhq/atoll/runtime/fake"
)

// logsFixture: a cluster, an environment and real agents on the fake runtime.
type logsFixture struct {
	*schedFixture
	t *testing.T
}

// logAgent is a real agent (its log endpoint included) on the fake runtime.
type logAgent struct {
	*agent.Agent
	rt   *fake.Fake
	stop func()
}

func newLogsFixture(t *testing.T, servers int) *logsFixture {
	t.Helper()
	c := cptest.NewCluster(t, servers, fastHeartbeats)
	conn := cptest.Conn(t, c.WaitLeader())
	f := &schedFixture{c: c, ctx: cptest.Ctx(t, c.AdminToken), apps: atollv1.NewAppServiceClient(conn),
		nodes: atollv1.NewNodeServiceClient(conn), envs: atollv1.NewEnvironmentServiceClient(conn)}
	// A young cluster may still change leaders: retry what that interrupts.
	cptest.WaitFor(t, schedWait, "an environment", func() bool {
		if _, err := atollv1.NewOrganizationServiceClient(conn).UpdateOrganization(f.ctx, &atollv1.UpdateOrganizationRequest{
			Organization: &atollv1.Organization{Quota: &atollv1.Resources{Cpu: math.MaxInt32, Memory: math.MaxInt32, Storage: math.MaxInt32}},
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"quota"}},
		}); err != nil {
			t.Logf("raise org quota: %v", err)
			return false
		}
		env, err := f.envs.CreateEnvironment(f.ctx, &atollv1.CreateEnvironmentRequest{Name: "logs",
			ResourceQuota: &atollv1.Resources{Cpu: 64000, Memory: 131072, Storage: 102400}})
		if status.Code(err) == codes.AlreadyExists {
			list, _ := f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{})
			for _, e := range list.GetEnvironments() {
				if e.Name == "logs" {
					env, err = e, nil
				}
			}
		}
		if err != nil {
			t.Logf("create environment: %v", err)
			return false
		}
		f.env = env
		return true
	})
	return &logsFixture{schedFixture: f, t: t}
}

func (f *logsFixture) startAgent(name string) *logAgent {
	t := f.t
	t.Helper()
	rt := fake.New()
	rt.SetClock(time.Now)
	rt.AddImage("nginx:1", fake.Image{})
	cfg := agent.DefaultConfig()
	for _, s := range f.c.Live() {
		cfg.Servers = append(cfg.Servers, s.GRPCAddr())
	}
	cfg.JoinToken = f.c.AdminToken
	cfg.DataDir = t.TempDir()
	cfg.Name = name
	cfg.RouterAddr, cfg.ListenAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.CPU, cfg.MemoryMB, cfg.StorageMB = 4000, 8192, 100_000
	cfg.PollInterval = 20 * time.Millisecond
	cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	cfg.StatusBatch = 20 * time.Millisecond
	cfg.StopTimeout = time.Second
	cfg.Registerer = prometheus.NewRegistry()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := agent.New(cfg, rt)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("agent %s did not stop", name)
		}
	}
	t.Cleanup(stop)
	f.c.WaitState(schedWait, "agent "+name+" registered", func(tx *state.Txn) bool {
		n := tx.Node(a.NodeID())
		return a.NodeID() != "" && n != nil && n.Status == atollv1.NodeStatus_NODE_READY
	})
	return &logAgent{Agent: a, rt: rt, stop: stop}
}

// runningApp creates an app and waits for its replicas to run; it returns
// the app and its instance ids.
func (f *logsFixture) runningApp(name string, replicas int32) (*atollv1.App, []string) {
	f.t.Helper()
	app := f.createApp(f.t, name, replicas, "100m", "64Mi")
	f.waitSettled(f.t, app.Id, int(replicas))
	var ids []string
	for _, in := range f.snap().AppInstances(app.Id) {
		ids = append(ids, in.Id)
	}
	return app, ids
}

// keepWriting writes "new 0", "new 1", ... to the instance's log, one per
// pace, until the returned stop is called; stop returns what was written.
func (a *logAgent) keepWriting(t *testing.T, instanceID string, pace time.Duration) (stop func() []string) {
	quit := make(chan struct{})
	done := make(chan []string)
	go func() {
		var mine []string
		for n := 0; ; n++ {
			select {
			case <-quit:
				done <- mine
				return
			case <-time.After(pace): // pacing, not synchronisation
			}
			l := fmt.Sprintf("new %d", n)
			a.write(t, instanceID, l)
			mine = append(mine, l)
		}
	}()
	return func() []string { close(quit); return <-done }
}

func (a *logAgent) write(t *testing.T, instanceID string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if err := a.rt.WriteLog(agent.ContainerName(instanceID), runtime.Stdout, l); err != nil {
			t.Fatalf("write log of %s: %v", instanceID, err)
		}
	}
}

// readLogs reads a GetAppLogs stream in the background.
func readLogs(t *testing.T, conn *grpc.ClientConn, ctx context.Context, req *atollv1.GetAppLogsRequest) *cptest.Stream[*atollv1.LogLine] {
	t.Helper()
	stream, err := atollv1.NewAppServiceClient(conn).GetAppLogs(ctx, req)
	if err != nil {
		t.Fatalf("GetAppLogs: %v", err)
	}
	return cptest.ReadStream(stream.Recv, describe)
}

func describe(ls []*atollv1.LogLine) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d lines:", len(ls))
	for i, l := range ls {
		if i == 40 && len(ls) > 50 {
			fmt.Fprintf(&b, " ... %d more", len(ls)-i)
			break
		}
		fmt.Fprintf(&b, " [%s %s]", l.Stream, l.Message)
	}
	return b.String()
}

// messages are the lines' texts; notices only with notices set, else none.
func messages(ls []*atollv1.LogLine, notices bool) []string {
	var out []string
	for _, l := range ls {
		if (l.Stream == api.NoticeStream) == notices {
			out = append(out, l.Message)
		}
	}
	return out
}

func is(msg string) func(*atollv1.LogLine) bool {
	return func(l *atollv1.LogLine) bool { return l.Message == msg }
}

// wantTail checks got is a tail of want (every line once, in order, none
// missing) of at least min lines.
func wantTail(t *testing.T, got, want []string, min int) {
	t.Helper()
	if len(got) < min || len(got) > len(want) {
		t.Fatalf("got %d lines, want between %d and %d: %q", len(got), min, len(want), got)
	}
	tail := want[len(want)-len(got):]
	for i := range got {
		if got[i] != tail[i] {
			t.Fatalf("line %d is %q, want %q (each line once, in order)\ngot  %q\nwant %q", i, got[i], tail[i], got, tail)
		}
	}
}

// Follow sends the history, then every new line exactly once, while lines
// are being written across the history/follow boundary.
func TestAppLogsFollowBoundary(t *testing.T) {
	f := newLogsFixture(t, 1)
	a := f.startAgent("host-1")
	app, ids := f.runningApp("web", 1)
	inst := ids[0]
	var written []string
	for i := range 20 {
		written = append(written, fmt.Sprintf("old %d", i))
	}
	a.write(t, inst, written...)
	conn := cptest.Conn(t, f.c.WaitLeader())

	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	stopWriter := a.keepWriting(t, inst, time.Millisecond)
	r := readLogs(t, conn, ctx, &atollv1.GetAppLogsRequest{EnvId: f.env.Id, AppId: app.Name, Lines: 5, Follow: true})
	r.Until(t, 20*time.Second, "a line written after the call started", func(l *atollv1.LogLine) bool {
		return strings.HasPrefix(l.Message, "new ") && l.Message != "new 0"
	})
	written = append(written, stopWriter()...)
	a.write(t, inst, "the end")
	written = append(written, "the end")
	got := r.Until(t, 20*time.Second, "the last line", is("the end"))
	if n := messages(got, true); len(n) > 0 {
		t.Fatalf("notices in a healthy stream: %q", n)
	}
	wantTail(t, messages(got, false), written, 6)
	if got[0].InstanceId != inst || got[0].Stream != "stdout" {
		t.Fatalf("first line: %v", got[0])
	}
}

// Lines 0 with follow sends no history: only lines written from now on.
func TestAppLogsFollowOnlyNewLines(t *testing.T) {
	f := newLogsFixture(t, 1)
	a := f.startAgent("host-1")
	app, ids := f.runningApp("web", 1)
	a.write(t, ids[0], "old 1", "old 2")
	conn := cptest.Conn(t, f.c.WaitLeader())
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	r := readLogs(t, conn, ctx, &atollv1.GetAppLogsRequest{EnvId: f.env.Id, AppId: app.Id, Follow: true})
	// The call has no "ready" signal: write until lines arrive.
	stopWriter := a.keepWriting(t, ids[0], 5*time.Millisecond)
	r.Until(t, 20*time.Second, "a new line", func(l *atollv1.LogLine) bool { return strings.HasPrefix(l.Message, "new ") })
	written := append(stopWriter(), "the end")
	a.write(t, ids[0], "the end")
	got := messages(r.Until(t, 20*time.Second, "the last line", is("the end")), false)
	for _, m := range got {
		if strings.HasPrefix(m, "old") {
			t.Fatalf("lines 0 with follow sent history: %q", got)
		}
	}
	wantTail(t, got, written, 2)

	// Lines 0 without follow is the default (100), over REST too.
	r2 := readLogs(t, conn, f.ctx, &atollv1.GetAppLogsRequest{EnvId: f.env.Id, AppId: app.Id})
	hist, err := r2.End(t, 20*time.Second)
	if err != nil || len(hist) != 2+len(written) {
		t.Fatalf("logs without follow: %v, %s", err, describe(hist))
	}
}

// An agent that goes away mid-follow ends the stream with UNAVAILABLE
// naming the instance and the node, in bounded time, over gRPC and REST.
func TestAppLogsFollowAgentStops(t *testing.T) {
	f := newLogsFixture(t, 1)
	a := f.startAgent("host-1")
	app, ids := f.runningApp("web", 1)
	a.write(t, ids[0], "before")
	leader := f.c.WaitLeader()
	r := readLogs(t, cptest.Conn(t, leader), f.ctx, &atollv1.GetAppLogsRequest{EnvId: f.env.Id, AppId: app.Name, Follow: true, Lines: 10})
	r.Until(t, 20*time.Second, "the history", is("before"))
	rest := restLogs(t, leader, f.c.AdminToken, "/v1/environments/"+f.env.Id+"/apps/web/logs?follow=true&lines=10")
	rest.until(t, 20*time.Second, "the history over REST", `"before"`)

	a.stop()
	got, err := r.End(t, 15*time.Second)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "logs of instance "+ids[0]+" on node host-1") ||
		!strings.Contains(err.Error(), "retry") {
		t.Fatalf("stream ended with %v after %s, want UNAVAILABLE naming the instance and node", err, describe(got))
	}
	wantReason(t, err, api.LogStreamEnded)
	body := rest.end(t, 15*time.Second)
	if !strings.Contains(body, `"error"`) || !strings.Contains(body, "logs of instance "+ids[0]) {
		t.Fatalf("REST stream ended without the error: %s", body)
	}
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.Reason == reason {
			return
		}
	}
	t.Fatalf("error %v lacks ErrorInfo reason %s", err, reason)
}

// A follower relays the logs from the leader; when the leader dies the
// stream ends with UNAVAILABLE saying so, instead of going quiet.
func TestAppLogsFollowerLeaderDies(t *testing.T) {
	f := newLogsFixture(t, 3)
	a := f.startAgent("host-1")
	app, ids := f.runningApp("web", 1)
	a.write(t, ids[0], "before")
	leader := f.c.WaitLeader()
	follower := f.c.Followers()[0]
	r := readLogs(t, cptest.Conn(t, follower), f.ctx, &atollv1.GetAppLogsRequest{EnvId: f.env.Id, AppId: app.Name, Follow: true, Lines: 10})
	r.Until(t, 20*time.Second, "the history", is("before"))
	a.write(t, ids[0], "followed")
	r.Until(t, 20*time.Second, "a followed line", is("followed"))

	f.c.Kill(f.c.Index(leader))
	got, err := r.End(t, 15*time.Second)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "retry") {
		t.Fatalf("stream ended with %v after %s, want UNAVAILABLE", err, describe(got))
	}
	if !strings.Contains(err.Error(), "leader") && !strings.Contains(err.Error(), "logs of instance") {
		t.Fatalf("error does not say what ended: %v", err)
	}
	t.Logf("follower's stream ended with: %v", err)

	// A new call through the follower works again once the agent has a
	// session with the new leader: it asks again and gets the lines once.
	f.c.WaitLeader()
	cptest.WaitFor(t, 30*time.Second, "logs through the new leader", func() bool {
		s, err := atollv1.NewAppServiceClient(cptest.Conn(t, follower)).GetAppLogs(f.ctx, &atollv1.GetAppLogsRequest{EnvId: f.env.Id, AppId: app.Name})
		if err != nil {
			return false
		}
		var n int
		for {
			l, err := s.Recv()
			if err == io.EOF {
				return n == 2
			}
			if err != nil {
				return false
			}
			n++
			_ = l
		}
	})
}

// A follow of the app picks up the instances that replace the followed
// one (restart); a follow of one instance ends saying it was replaced.
func TestAppLogsFollowRestart(t *testing.T) {
	f := newLogsFixture(t, 1)
	a := f.startAgent("host-1")
	app, ids := f.runningApp("web", 1)
	old := ids[0]
	a.write(t, old, "old instance")
	conn := cptest.Conn(t, f.c.WaitLeader())
	whole := readLogs(t, conn, f.ctx, &atollv1.GetAppLogsRequest{EnvId: f.env.Id, AppId: app.Name, Follow: true, Lines: 10})
	whole.Until(t, 20*time.Second, "the history", is("old instance"))
	one := readLogs(t, conn, f.ctx, &atollv1.GetAppLogsRequest{EnvId: f.env.Id, AppId: app.Name, InstanceId: old, Follow: true, Lines: 10})
	one.Until(t, 20*time.Second, "the instance's history", is("old instance"))

	if _, err := f.apps.RestartApp(f.ctx, &atollv1.RestartAppRequest{EnvId: f.env.Id, AppId: app.Id}); err != nil {
		t.Fatalf("restart: %v", err)
	}
	var repl string
	f.c.WaitState(schedWait, "the replacement runs", func(tx *state.Txn) bool {
		for _, in := range tx.AppInstances(app.Id) {
			if in.Id != old && in.State == atollv1.InstanceState_INSTANCE_RUNNING {
				repl = in.Id
				return true
			}
		}
		return false
	})
	a.write(t, repl, "new instance")
	got := whole.Until(t, 20*time.Second, "the new instance's line", is("new instance"))
	if m := messages(got, false); strings.Join(m, "|") != "old instance|new instance" {
		t.Fatalf("whole-app follow: %s", describe(got))
	}
	// The one-instance follow ends, saying why.
	got, err := one.End(t, 20*time.Second)
	if err != nil {
		t.Fatalf("one-instance follow ended with %v", err)
	}
	if n := messages(got, true); len(n) != 1 || !strings.Contains(n[0], "instance "+old) || !strings.Contains(n[0], "replaced") {
		t.Fatalf("one-instance follow: %s", describe(got))
	}
}

// Logs of an unknown app or instance are NOT_FOUND naming it.
func TestAppLogsNotFound(t *testing.T) {
	f := newLogsFixture(t, 1)
	f.startAgent("host-1")
	app, _ := f.runningApp("web", 1)
	conn := cptest.Conn(t, f.c.WaitLeader())
	for _, tc := range []struct {
		req  *atollv1.GetAppLogsRequest
		name string
		want []string
	}{
		{&atollv1.GetAppLogsRequest{EnvId: f.env.Id, AppId: "nope"}, "nope", []string{`app "nope" not found`}},
		{&atollv1.GetAppLogsRequest{EnvId: f.env.Id, AppId: app.Name, InstanceId: "inst_nope", Follow: true}, "inst_nope",
			[]string{`instance "inst_nope" not found in app "web"`}},
	} {
		_, err := readLogs(t, conn, f.ctx, tc.req).End(t, 10*time.Second)
		if status.Code(err) != codes.NotFound {
			t.Fatalf("%v: %v, want NOT_FOUND", tc.req, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%v: %v, want %q", tc.req, err, w)
			}
		}
		var named bool
		for _, d := range status.Convert(err).Details() {
			if ri, ok := d.(*errdetails.ResourceInfo); ok && ri.ResourceName == tc.name {
				named = true
			}
		}
		if !named {
			t.Fatalf("%v: %v has no ResourceInfo naming %s", tc.req, err, tc.name)
		}
	}
}

// restReader reads a REST log stream (newline-delimited JSON) in the background.
type restReader struct {
	lines chan string
	done  chan error
	all   strings.Builder
}

func restLogs(t *testing.T, s *controlplane.Server, token, path string) *restReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.HTTPAddr()+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	r := &restReader{lines: make(chan string, 10000), done: make(chan error, 1)}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		r.done <- sc.Err()
	}()
	return r
}

func (r *restReader) until(t *testing.T, timeout time.Duration, what, substr string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l := <-r.lines:
			r.all.WriteString(l + "\n")
			if strings.Contains(l, substr) {
				return
			}
		case err := <-r.done:
			t.Fatalf("waiting for %s: REST stream ended (%v): %s", what, err, r.all.String())
		case <-deadline.C:
			t.Fatalf("no %s within %v: %s", what, timeout, r.all.String())
		}
	}
}

func (r *restReader) end(t *testing.T, timeout time.Duration) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l := <-r.lines:
			r.all.WriteString(l + "\n")
		case <-r.done:
			for len(r.lines) > 0 {
				r.all.WriteString(<-r.lines + "\n")
			}
			return r.all.String()
		case <-deadline.C:
			t.Fatalf("the REST log stream did not end within %v: %s", timeout, r.all.String())
		}
	}
}

// With replicas on two nodes, losing one agent is a notice while the other
// keeps streaming; losing the second ends the call with both failures.
func TestAppLogsFollowPartialFailure(t *testing.T) {
	f := newLogsFixture(t, 1)
	agents := map[string]*logAgent{}
	for _, name := range []string{"host-1", "host-2"} {
		a := f.startAgent(name)
		agents[a.NodeID()] = a
	}
	app := f.createApp(t, "web", 2, "3", "64Mi") // one per node (4 CPUs each)
	f.waitSettled(t, app.Id, 2)
	ins := f.snap().AppInstances(app.Id)
	if ins[0].NodeId == ins[1].NodeId {
		t.Fatalf("both replicas on node %s: 3 CPUs each cannot share a 4-CPU node", ins[0].NodeId)
	}
	first, second := agents[ins[0].NodeId], agents[ins[1].NodeId]
	first.write(t, ins[0].Id, "one")
	second.write(t, ins[1].Id, "two")
	r := readLogs(t, cptest.Conn(t, f.c.WaitLeader()), f.ctx, &atollv1.GetAppLogsRequest{EnvId: f.env.Id, AppId: app.Name, Follow: true, Lines: 10})
	r.Until(t, 20*time.Second, "the history", func(*atollv1.LogLine) bool { return len(messages(r.All(), false)) == 1 })
	r.Until(t, 20*time.Second, "the history", func(*atollv1.LogLine) bool { return true })
	if m := strings.Join(messages(r.All(), false), "|"); m != "one|two" {
		t.Fatalf("history: %s", describe(r.All()))
	}

	first.stop()
	got := r.Until(t, 15*time.Second, "a notice", func(l *atollv1.LogLine) bool { return l.Stream == api.NoticeStream })
	if n := got[len(got)-1]; n.InstanceId != ins[0].Id || !strings.Contains(n.Message, "logs of instance "+ins[0].Id) ||
		!strings.Contains(n.Message, "keep streaming") {
		t.Fatalf("notice: %v", n)
	}
	second.write(t, ins[1].Id, "still here")
	r.Until(t, 15*time.Second, "the other instance's line", is("still here"))

	second.stop()
	_, err := r.End(t, 15*time.Second)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), ins[0].Id) || !strings.Contains(err.Error(), ins[1].Id) {
		t.Fatalf("stream ended with %v, want UNAVAILABLE naming both instances", err)
	}
	wantReason(t, err, api.LogStreamEnded)
}
