package cptest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// FakeAgentConfig describes the host a FakeAgent registers.
type FakeAgentConfig struct {
	Name     string
	Capacity *atollv1.Resources // also the allocatable
	Labels   map[string]string
	// Fail, when set, decides per assignment whether the instance cannot
	// run: a non-empty message is reported as ERROR (like a missing image).
	Fail func(*atollv1.Assignment) string
}

// FakeAgent is an agent without a runtime: it opens a real
// AgentService.Session on the cluster's leader, registers its host, sends
// heartbeats at the period the server asks for, and reports every assigned
// instance that should run as RUNNING at 127.0.0.1:<fake port>. It honours
// full assignment sets (anything not listed goes) and removals, keeps its
// node id across sessions, and reconnects by itself when a session ends
// (leader change), unless it was stopped.
//
// Every method is safe for concurrent use; WaitUntil blocks on changes, not
// on a timer.
type FakeAgent struct {
	t     testing.TB
	c     *Cluster
	token string
	cfg   FakeAgentConfig

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	nodeID   string
	running  map[string]*atollv1.Assignment
	upserts  map[string][]*atollv1.Assignment // every assignment received, by instance
	ports    map[string]int
	paused   bool
	resumed  chan struct{} // closed when not paused
	stopped  bool
	sessions int  // sessions that got SessionInfo
	live     bool // a session is established now
	cancel   context.CancelFunc
	done     chan struct{} // closed when the current run loop ends
	closing  bool
	nextPort atomic.Int32
	health   map[string]*atollv1.InstanceStatus // SetHealth: healthy, health_message
	out      chan *atollv1.AgentMessage         // the live session's sender
	routes   map[string][]string                // the last routing table received
}

// NewFakeAgent starts a fake agent against c (with the admin token) and
// waits until its first session is established.
func (c *Cluster) NewFakeAgent(cfg FakeAgentConfig) *FakeAgent {
	c.t.Helper()
	if cfg.Capacity == nil {
		cfg.Capacity = &atollv1.Resources{Cpu: 4000, Memory: 8192, Storage: 100000}
	}
	a := &FakeAgent{t: c.t, c: c, token: c.AdminToken, cfg: cfg, changed: make(chan struct{}),
		running: map[string]*atollv1.Assignment{}, upserts: map[string][]*atollv1.Assignment{}, ports: map[string]int{}, resumed: make(chan struct{})}
	close(a.resumed)
	a.nextPort.Store(20000)
	c.t.Cleanup(a.shutdown)
	a.start()
	a.WaitUntil(30*time.Second, "agent "+cfg.Name+" registered", a.connected)
	return a
}

// SetHealth sets the health the agent reports for a running instance (as
// its health check would: healthy, or the failure) and reports it now when
// the instance runs. Instances start with none (healthy false, no message).
func (a *FakeAgent) SetHealth(id string, healthy bool, msg string) {
	a.mu.Lock()
	if a.health == nil {
		a.health = map[string]*atollv1.InstanceStatus{}
	}
	a.health[id] = &atollv1.InstanceStatus{Healthy: healthy, HealthMessage: msg}
	_, running := a.running[id]
	out, port := a.out, a.ports[id]
	a.mu.Unlock()
	if !running || out == nil {
		return
	}
	select {
	case out <- &atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Status{Status: &atollv1.StatusReport{Instances: []*atollv1.InstanceStatus{{
		InstanceId: id, State: atollv1.InstanceState_INSTANCE_RUNNING, ContainerId: "fake-" + id,
		Address: fmt.Sprintf("127.0.0.1:%d", port), Healthy: healthy, HealthMessage: msg}}}}}:
	default: // the session is gone: a new one reports it with the assignments
	}
}

// Routes returns the last routing table the agent received: hostname ->
// instance addresses.
func (a *FakeAgent) Routes() map[string][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]string{}
	for h, r := range a.routes {
		out[h] = slices.Clone(r)
	}
	return out
}

// NodeID is the id the control plane gave this agent's node.
func (a *FakeAgent) NodeID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nodeID
}

// Instances lists the ids of the instances the agent runs now, sorted.
func (a *FakeAgent) Instances() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.running))
	for id := range a.running {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Upserts returns every assignment the agent received for an instance, in
// order (a full set repeats the current one).
func (a *FakeAgent) Upserts(id string) []*atollv1.Assignment {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.upserts[id])
}

// Sessions counts the sessions established so far.
func (a *FakeAgent) Sessions() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions
}

// PauseHeartbeats freezes the agent: it sends nothing (no heartbeats, no
// status) and leaves the assignments it receives unapplied until Resume.
func (a *FakeAgent) PauseHeartbeats() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.paused {
		a.paused = true
		a.resumed = make(chan struct{})
		a.notifyLocked()
	}
}

// Resume undoes PauseHeartbeats.
func (a *FakeAgent) Resume() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paused {
		a.paused = false
		close(a.resumed)
		a.notifyLocked()
	}
}

// Stop closes the session stream and does not reconnect.
func (a *FakeAgent) Stop() {
	a.mu.Lock()
	a.stopped = true
	cancel, done := a.cancel, a.done
	a.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Reconnect closes the current session (if any) and opens a new one with
// the same node id: the node registers again and gets a full assignment set.
// It returns once the new session is established.
func (a *FakeAgent) Reconnect() {
	a.t.Helper()
	a.Stop()
	a.mu.Lock()
	a.stopped = false
	want := a.sessions + 1
	a.mu.Unlock()
	a.start()
	a.WaitUntil(30*time.Second, fmt.Sprintf("agent %s session %d", a.cfg.Name, want), func() bool { return a.connected() && a.Sessions() >= want })
}

// connected reports whether a session is established now.
func (a *FakeAgent) connected() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.live
}

// WaitUntil blocks until cond holds (evaluated again after every change of
// the agent; it may call the agent's methods) or fails the test after timeout.
func (a *FakeAgent) WaitUntil(timeout time.Duration, what string, cond func() bool) {
	a.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		ch := a.changed
		a.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			a.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// WaitInstances waits until the agent runs exactly the given number of instances.
func (a *FakeAgent) WaitInstances(timeout time.Duration, n int) {
	a.t.Helper()
	a.WaitUntil(timeout, fmt.Sprintf("agent %s running %d instances", a.cfg.Name, n), func() bool { return len(a.Instances()) == n })
}

func (a *FakeAgent) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

func (a *FakeAgent) shutdown() {
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	a.Stop()
}

func (a *FakeAgent) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.mu.Lock()
	a.cancel, a.done = cancel, done
	a.mu.Unlock()
	go func() {
		defer close(done)
		backoff := 20 * time.Millisecond
		for ctx.Err() == nil {
			err := a.session(ctx)
			a.mu.Lock()
			if a.live {
				a.live = false
				a.notifyLocked()
			}
			closing := a.closing
			a.mu.Unlock()
			if ctx.Err() != nil || closing {
				return
			}
			_ = err // the session ended (leader change, server gone): reconnect
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 500*time.Millisecond)
		}
	}()
}

// session runs one session until the stream fails or ctx ends.
func (a *FakeAgent) session(ctx context.Context) error {
	l := a.c.Leader()
	if l == nil {
		return fmt.Errorf("no leader")
	}
	conn, err := grpc.NewClient(l.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+a.token)
	stream, err := atollv1.NewAgentServiceClient(conn).Session(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	nodeID := a.nodeID
	a.mu.Unlock()
	if err := stream.Send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Register{Register: &atollv1.RegisterNode{
		NodeId: nodeID, Name: a.cfg.Name, Capacity: a.cfg.Capacity, Allocatable: a.cfg.Capacity, Labels: a.cfg.Labels,
		Address: "127.0.0.1", AgentVersion: "fake"}}}); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	info := first.GetSession()
	if info == nil {
		return fmt.Errorf("first server message is not SessionInfo: %v", first)
	}
	period := time.Duration(info.HeartbeatPeriodMs) * time.Millisecond
	if period <= 0 {
		period = time.Second
	}
	a.mu.Lock()
	a.nodeID = info.NodeId
	a.sessions++
	a.live = true
	a.notifyLocked()
	a.mu.Unlock()

	// One sender: heartbeats and status reports share the stream.
	out := make(chan *atollv1.AgentMessage, 64)
	a.mu.Lock()
	a.out = out
	a.mu.Unlock()
	sendErr := make(chan error, 1)
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			var m *atollv1.AgentMessage
			select {
			case <-ctx.Done():
				sendErr <- ctx.Err()
				return
			case m = <-out:
			case <-t.C:
				m = &atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Heartbeat{Heartbeat: &atollv1.Heartbeat{}}}
			}
			if !a.waitResumed(ctx) {
				sendErr <- ctx.Err()
				return
			}
			if err := stream.Send(m); err != nil {
				sendErr <- err
				return
			}
		}
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			cancel()
			<-sendErr
			return err
		}
		as := m.GetAssignments()
		if as == nil {
			continue
		}
		if !a.waitResumed(ctx) {
			return ctx.Err()
		}
		if st := a.apply(as); len(st) > 0 {
			select {
			case out <- &atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Status{Status: &atollv1.StatusReport{Instances: st}}}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// waitResumed blocks while the agent is paused; false when ctx ends first.
func (a *FakeAgent) waitResumed(ctx context.Context) bool {
	a.mu.Lock()
	ch := a.resumed
	a.mu.Unlock()
	select {
	case <-ch:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}

// apply updates what runs and returns the states to report.
func (a *FakeAgent) apply(as *atollv1.Assignments) []*atollv1.InstanceStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	defer a.notifyLocked()
	if as.Routes != nil {
		a.routes = map[string][]string{}
		for h, r := range as.Routes {
			if h != "" {
				a.routes[h] = slices.Clone(r.Addresses)
			}
		}
	}
	if as.Full {
		keep := map[string]bool{}
		for _, u := range as.Upsert {
			keep[u.InstanceId] = true
		}
		for id := range a.running {
			if !keep[id] {
				delete(a.running, id)
			}
		}
	}
	for _, id := range as.Remove {
		delete(a.running, id)
	}
	var st []*atollv1.InstanceStatus
	for _, u := range as.Upsert {
		a.upserts[u.InstanceId] = append(a.upserts[u.InstanceId], proto.Clone(u).(*atollv1.Assignment))
		if a.cfg.Fail != nil {
			if msg := a.cfg.Fail(u); msg != "" {
				delete(a.running, u.InstanceId)
				st = append(st, &atollv1.InstanceStatus{InstanceId: u.InstanceId, State: atollv1.InstanceState_INSTANCE_ERROR, Error: msg})
				continue
			}
		}
		if !u.Running {
			delete(a.running, u.InstanceId)
			st = append(st, &atollv1.InstanceStatus{InstanceId: u.InstanceId, State: atollv1.InstanceState_INSTANCE_STOPPED})
			continue
		}
		a.running[u.InstanceId] = proto.Clone(u).(*atollv1.Assignment)
		port, ok := a.ports[u.InstanceId]
		if !ok {
			port = int(a.nextPort.Add(1))
			a.ports[u.InstanceId] = port
		}
		h := a.health[u.InstanceId]
		st = append(st, &atollv1.InstanceStatus{InstanceId: u.InstanceId, State: atollv1.InstanceState_INSTANCE_RUNNING,
			ContainerId: "fake-" + u.InstanceId, Address: fmt.Sprintf("127.0.0.1:%d", port),
			Healthy: h.GetHealthy(), HealthMessage: h.GetHealthMessage()})
	}
	return st
}

// WaitState blocks until cond holds on the current leader's state (checked
// again on every change of the store) or fails the test after timeout.
func (c *Cluster) WaitState(timeout time.Duration, what string, cond func(tx *state.Txn) bool) {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		var watch, restored <-chan struct{}
		if l := c.Leader(); l != nil {
			st, r := l.State()
			tx := st.Snapshot()
			if cond(tx) {
				return
			}
			// The meta table (applied index) changes with every commit.
			watch, restored = tx.TableWatch(state.TableMeta), r
		}
		// The timer only covers a change of leader.
		recheck := time.NewTimer(250 * time.Millisecond)
		select {
		case <-watch:
		case <-restored:
		case <-recheck.C:
		case <-deadline.C:
			c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		recheck.Stop()
	}
}
