package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/keyring"
	"github.com/atollhq/atoll/controlplane/quota"
	"github.com/atollhq/atoll/controlplane/state"
	"github.com/atollhq/atoll/metrics"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// dispatcher holds the agents' sessions on the leader (swarmkit style): one
// stream per agent; heartbeats and usage stay in memory, only node status
// and instance states go through raft.
type dispatcher struct {
	s       *Server
	metrics *metrics.Usage

	mu         sync.Mutex
	sessions   map[string]*agentSession
	heartbeats map[string]time.Time
	instUsage  map[string]usageEntry
	nodeUsage  map[string]*atollv1.Resources

	atollv1.UnimplementedAgentServiceServer
}

type agentSession struct {
	nodeID, secret, agentAddr string
	cancel                    context.CancelFunc
}

type usageEntry struct {
	env, node string
	used      *atollv1.Resources
}

func newDispatcher(s *Server, m *metrics.Usage) *dispatcher {
	return &dispatcher{s: s, metrics: m, sessions: map[string]*agentSession{}, heartbeats: map[string]time.Time{},
		instUsage: map[string]usageEntry{}, nodeUsage: map[string]*atollv1.Resources{}}
}

var errNotLeader = errors.New("not the leader")

// Session implements AgentService.
func (d *dispatcher) Session(stream atollv1.AgentService_SessionServer) error {
	s := d.s
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	if !s.IsLeader() {
		if addr := s.leaderGRPC(); addr != "" {
			_ = stream.SendHeader(metadata.Pairs("x-atoll-leader", addr))
			return apierr.Unavailable("server %s is not the leader; agents connect to the leader at %s", s.id, addr)
		}
		return apierr.Unavailable("server %s is not the leader and no leader is known", s.id)
	}
	first, err := recvTimeout(ctx, stream, 10*time.Second)
	if err != nil {
		return err
	}
	reg := first.GetRegister()
	if reg == nil {
		return apierr.InvalidField("register", "the first message of a session must be RegisterNode")
	}
	if err := validateRegister(reg); err != nil {
		return err
	}
	nodeID := reg.NodeId
	if nodeID == "" || api.CheckID("nodeId", "node", nodeID) != nil {
		nodeID = api.NewID("node")
	}
	id := api.IdentityFrom(ctx)
	tokenID := ""
	if id != nil {
		tokenID = id.TokenID
	}
	st, _ := s.fsm.State()
	if cur := st.Snapshot().Node(nodeID); cur != nil && cur.RegisteredByToken != "" && cur.RegisteredByToken != tokenID &&
		(id == nil || !id.Has(api.PermClusterAdmin)) {
		return apierr.PermissionDenied("node " + nodeID + " (registered with another join token)")
	}
	node := &atollv1.Node{Id: nodeID, Name: reg.Name, Status: atollv1.NodeStatus_NODE_READY, Capacity: reg.Capacity,
		Allocatable: reg.Allocatable, Labels: reg.Labels, RouterAddress: reg.RouterAddress, AgentVersion: reg.AgentVersion,
		Address: reg.Address, AgentAddress: reg.AgentAddress, RegisteredByToken: tokenID}
	if _, err := s.applySystem(&atollv1.Command{Actor: "agent:" + reg.Name, Cmd: &atollv1.Command_UpsertNode{UpsertNode: &atollv1.UpsertNodeCmd{Node: node}}}); err != nil {
		return err
	}
	sess := &agentSession{nodeID: nodeID, secret: api.NewSecret(), agentAddr: reg.AgentAddress, cancel: cancel}
	d.mu.Lock()
	if old := d.sessions[nodeID]; old != nil {
		old.cancel()
	}
	d.sessions[nodeID] = sess
	d.heartbeats[nodeID] = time.Now()
	if d.metrics != nil {
		d.metrics.Sessions.Set(float64(len(d.sessions)))
		for _, dim := range quota.Of(reg.Allocatable).Dims() {
			d.metrics.NodeAlloc.WithLabelValues(nodeID, dim.Name).Set(float64(dim.Value))
		}
	}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		if d.sessions[nodeID] == sess {
			delete(d.sessions, nodeID)
		}
		if d.metrics != nil {
			d.metrics.Sessions.Set(float64(len(d.sessions)))
		}
		d.mu.Unlock()
	}()
	s.log.Info("agent session started", "node", nodeID, "name", reg.Name)
	if err := stream.Send(&atollv1.ServerMessage{Msg: &atollv1.ServerMessage_Session{Session: &atollv1.SessionInfo{
		NodeId: nodeID, HeartbeatPeriodMs: s.cfg.HeartbeatPeriod.Milliseconds(), UsagePeriodMs: s.cfg.UsagePeriod.Milliseconds(),
		Domain: s.cfg.Domain, AgentSecret: sess.secret,
	}}}); err != nil {
		return err
	}
	recvErr := make(chan error, 1)
	go func() { recvErr <- d.recvLoop(ctx, stream, nodeID) }()
	sendErr := d.sendLoop(ctx, stream, nodeID)
	cancel()
	if err := <-recvErr; err != nil && !errors.Is(err, context.Canceled) && sendErr == nil {
		return err
	}
	if errors.Is(sendErr, errNotLeader) {
		return apierr.Unavailable("leadership moved; reconnect to the new leader")
	}
	return nil
}

func validateRegister(r *atollv1.RegisterNode) error {
	var v apierr.Violations
	if r.Name == "" || len(r.Name) > 253 {
		v.Add("register.name", "is required (the host name), at most 253 characters")
	}
	c, a := quota.Of(r.Capacity), quota.Of(r.Allocatable)
	if c.CPU <= 0 || c.Memory <= 0 || c.Storage < 0 {
		v.Add("register.capacity", "cpu and memory must be positive")
	}
	if a.CPU < 0 || a.Memory < 0 || a.Storage < 0 || a.CPU > c.CPU || a.Memory > c.Memory || a.Storage > c.Storage {
		v.Add("register.allocatable", "must be between 0 and the capacity in every dimension")
	}
	return v.Err()
}

func recvTimeout(ctx context.Context, stream atollv1.AgentService_SessionServer, d time.Duration) (*atollv1.AgentMessage, error) {
	type res struct {
		m   *atollv1.AgentMessage
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := stream.Recv()
		ch <- res{m, err}
	}()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-time.After(d):
		return nil, apierr.InvalidField("register", "no RegisterNode within %s", d)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *dispatcher) recvLoop(ctx context.Context, stream atollv1.AgentService_SessionServer, nodeID string) error {
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.heartbeats[nodeID] = time.Now()
		d.mu.Unlock()
		if err := d.reviveIfDown(nodeID); err != nil && !d.s.IsLeader() {
			return errNotLeader
		}
		switch msg := m.Msg.(type) {
		case *atollv1.AgentMessage_Status:
			if len(msg.Status.Instances) == 0 {
				continue
			}
			cmd := &atollv1.Command{Actor: "agent:" + nodeID, Cmd: &atollv1.Command_UpdateInstances{UpdateInstances: &atollv1.UpdateInstancesCmd{NodeId: nodeID, Instances: msg.Status.Instances}}}
			if _, err := d.s.applySystem(cmd); err != nil {
				d.s.log.Warn("record instance status", "node", nodeID, "err", err)
				if !d.s.IsLeader() {
					return errNotLeader
				}
			}
		case *atollv1.AgentMessage_Usage:
			d.recordUsage(nodeID, msg.Usage)
		}
	}
}

// reviveIfDown marks a DOWN node READY again (DRAINING if drained) when its
// agent speaks on a session that outlived the TTL: its lost instances were
// replaced meanwhile and the session's diffs remove them from the agent.
func (d *dispatcher) reviveIfDown(nodeID string) error {
	st, _ := d.s.fsm.State()
	if n := st.Snapshot().Node(nodeID); n == nil || n.Status != atollv1.NodeStatus_NODE_DOWN {
		return nil
	}
	_, err := d.s.applySystem(&atollv1.Command{Actor: "system:health", Cmd: &atollv1.Command_SetNodeStatus{SetNodeStatus: &atollv1.SetNodeStatusCmd{
		NodeId: nodeID, Status: atollv1.NodeStatus_NODE_READY}}})
	if err != nil {
		d.s.log.Warn("mark node ready again", "node", nodeID, "err", err)
	}
	return err
}

func (d *dispatcher) recordUsage(nodeID string, u *atollv1.UsageReport) {
	st, _ := d.s.fsm.State()
	tx := st.Snapshot()
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, e := range d.instUsage {
		if e.node == nodeID {
			delete(d.instUsage, id)
		}
	}
	envs := map[string]quota.Vec{}
	for _, iu := range u.Instances {
		in := tx.Instance(iu.InstanceId)
		if in == nil || in.NodeId != nodeID {
			continue
		}
		d.instUsage[in.Id] = usageEntry{env: in.EnvId, node: nodeID, used: iu.Used}
		envs[in.EnvId] = envs[in.EnvId].Add(quota.Of(iu.Used))
	}
	d.nodeUsage[nodeID] = u.NodeUsed
	if d.metrics != nil {
		for _, dim := range quota.Of(u.NodeUsed).Dims() {
			d.metrics.Node.WithLabelValues(nodeID, dim.Name).Set(float64(dim.Value))
		}
		for env := range envs {
			for _, dim := range d.envUsageLocked(env).Dims() {
				d.metrics.Environment.WithLabelValues(env, dim.Name).Set(float64(dim.Value))
			}
		}
	}
}

func (d *dispatcher) envUsageLocked(envID string) quota.Vec {
	var v quota.Vec
	for _, e := range d.instUsage {
		if e.env == envID {
			v = v.Add(quota.Of(e.used))
		}
	}
	return v
}

// InstanceUsage implements api.UsageSource.
func (d *dispatcher) InstanceUsage(id string) *atollv1.Resources {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.instUsage[id]; ok {
		return e.used
	}
	return nil
}

// EnvUsage implements api.UsageSource.
func (d *dispatcher) EnvUsage(envID string) *atollv1.Resources {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.envUsageLocked(envID).Proto()
}

// LastHeartbeat implements api.NodeHealth.
func (d *dispatcher) LastHeartbeat(nodeID string) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.heartbeats[nodeID]
}

// NodeUsage implements api.NodeHealth.
func (d *dispatcher) NodeUsage(nodeID string) *atollv1.Resources {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nodeUsage[nodeID]
}

// sendLoop pushes the node's assignments: the full set first, then changes.
func (d *dispatcher) sendLoop(ctx context.Context, stream atollv1.AgentService_SessionServer, nodeID string) error {
	sent := map[string][]byte{}
	var sentRoutes []byte
	var sentVolumes []string
	full := true
	for {
		if !d.s.IsLeader() {
			return errNotLeader
		}
		st, restored := d.s.fsm.State()
		tx := st.Snapshot()
		watches := []<-chan struct{}{restored}
		for _, t := range []string{state.TableInstances, state.TableApps, state.TableAppSpecs, state.TableEnvironments, state.TableVariableSets, state.TableFiles, state.TableVolumes, state.TableVarSetVersions, state.TableFileVersions} {
			watches = append(watches, tx.TableWatch(t))
		}
		msg := &atollv1.Assignments{Full: full}
		current := map[string]bool{}
		for _, in := range tx.NodeInstances(nodeID) {
			a := buildAssignment(tx, in, d.s.cfg.Domain, d.s.keyring)
			if a == nil {
				continue
			}
			current[in.Id] = true
			b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(a)
			if full || !bytes.Equal(sent[in.Id], b) {
				msg.Upsert = append(msg.Upsert, a)
				sent[in.Id] = b
			}
		}
		for id := range sent {
			if !current[id] {
				msg.Remove = append(msg.Remove, id)
				delete(sent, id)
			}
		}
		sort.Strings(msg.Remove)
		vols := liveVolumes(tx)
		if full || !slices.Equal(vols, sentVolumes) {
			msg.VolumesListed, msg.LiveVolumes = true, vols
			sentVolumes = vols
		}
		routes := buildRoutes(tx, d.s.cfg.Domain)
		rb, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&atollv1.Assignments{Routes: routes})
		if full || !bytes.Equal(rb, sentRoutes) {
			msg.Routes = routes
			if len(routes) == 0 {
				// An empty map cannot say "no routes"; a sentinel entry does.
				msg.Routes = map[string]*atollv1.RouteTargets{"": {}}
			}
			sentRoutes = rb
		}
		if full || len(msg.Upsert) > 0 || len(msg.Remove) > 0 || msg.Routes != nil || msg.VolumesListed {
			if err := stream.Send(&atollv1.ServerMessage{Msg: &atollv1.ServerMessage_Assignments{Assignments: msg}}); err != nil {
				return err
			}
		}
		full = false
		if !waitAny(ctx, 10*time.Second, watches...) {
			return nil
		}
	}
}

// liveVolumes lists the ids of every volume in the state, sorted.
func liveVolumes(tx *state.Txn) []string {
	ids := tx.VolumeIDs()
	sort.Strings(ids)
	return ids
}

// VolumeName is the Docker volume name of an atoll volume.
func VolumeName(volID string) string { return "atoll-" + volID }

// buildAssignment gathers what an agent needs to run one instance: the
// container spec of the app version the instance was placed for (the app's
// current one, or the spec kept for an older version during a rollout), so
// an update never changes a running instance's container. Its variable
// sets and files are the versions that spec was built with (fsm.MountedVariableSet),
// so an update of a set does not change them either. Only the app's
// name and hostname, which the agent does not build the container from,
// are always the current ones.
func buildAssignment(tx *state.Txn, in *atollv1.Instance, domain string, kr *keyring.Keyring) *atollv1.Assignment {
	cur := tx.App(in.AppId)
	env := tx.Environment(in.EnvId)
	if cur == nil || env == nil {
		return nil
	}
	app := fsm.InstanceSpec(tx, cur, in)
	if app == nil {
		app = cur // no kept spec (state from before specs were kept)
	}
	a := &atollv1.Assignment{
		InstanceId: in.Id, AppId: cur.Id, AppName: cur.Name, EnvId: env.Id, EnvSlug: env.Slug, OrgId: cur.OrgId,
		AppVersion: in.AppVersion, Command: app.ResolvedCommand, Args: app.ResolvedArgs, Env: map[string]string{},
		Ports: app.Ports, Resources: in.Resources, Running: in.DesiredRunning, RestartGeneration: app.RestartGeneration,
		HealthCheck: app.HealthCheck,
	}
	if img := app.GetSource().GetImage(); img != nil {
		a.Image = img.Name + ":" + img.Tag
	}
	for _, m := range app.VariableSetMounts {
		if vs := fsm.MountedVariableSet(tx, m); vs != nil {
			for k, v := range vs.Variables {
				val := v.GetValue()
				if v.GetSecret() {
					if plain, err := kr.Open(val); err == nil {
						val = plain
					} else {
						val = "" // sealed with another cluster's key (restored snapshot): never leak ciphertext
					}
				}
				a.Env[k] = val
			}
		}
	}
	for _, m := range app.FileMounts {
		if f := fsm.MountedFile(tx, m); f != nil {
			a.Files = append(a.Files, &atollv1.ContainerFile{MountPath: m.MountPath, Content: f.Content, Owner: m.FileOwner, Sha256: f.Sha256})
		}
	}
	for _, m := range app.VolumeMounts {
		if v := tx.Volume(m.VolIdRef); v != nil {
			a.Volumes = append(a.Volumes, &atollv1.ContainerVolume{VolumeId: v.Id, Name: VolumeName(v.Id), Path: m.Path, SizeMb: v.SizeMb})
		}
	}
	if pe := app.PublicEndpoint; pe != nil {
		a.PublicPort = pe.AppPort
		a.Hostname = api.PublicHostname(cur.Name, env.Slug, domain)
	}
	return a
}

// buildRoutes maps every public hostname to the addresses of its running instances.
func buildRoutes(tx *state.Txn, domain string) map[string]*atollv1.RouteTargets {
	routes := map[string]*atollv1.RouteTargets{}
	instances, _ := tx.AllInstances()
	for _, in := range instances {
		if in.State != atollv1.InstanceState_INSTANCE_RUNNING || in.Address == "" || !in.DesiredRunning {
			continue
		}
		app := tx.App(in.AppId)
		env := tx.Environment(in.EnvId)
		if app == nil || env == nil || app.PublicEndpoint == nil || app.IsDeleted || !fsm.Serving(tx, app, in) {
			continue // unhealthy (or not yet checked): out of the routers' tables
		}
		host := api.PublicHostname(app.Name, env.Slug, domain)
		if routes[host] == nil {
			routes[host] = &atollv1.RouteTargets{}
		}
		routes[host].Addresses = append(routes[host].Addresses, in.Address)
	}
	for _, r := range routes {
		sort.Strings(r.Addresses)
	}
	return routes
}

// healthLoop marks nodes DOWN when their heartbeats stop for the TTL.
func (d *dispatcher) healthLoop(ctx context.Context) {
	start := time.Now()
	t := time.NewTicker(max(d.s.cfg.HeartbeatPeriod/2, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, _ := d.s.fsm.State()
		nodes, _ := st.Snapshot().Nodes()
		now := time.Now()
		for _, n := range nodes {
			if n.Status == atollv1.NodeStatus_NODE_DOWN {
				continue
			}
			d.mu.Lock()
			last := d.heartbeats[n.Id]
			d.mu.Unlock()
			if last.Before(start) {
				last = start // a new leader gives every node a full TTL
			}
			if now.Sub(last) < d.s.cfg.NodeTTL {
				continue
			}
			msg := fmt.Sprintf("no heartbeat for %s", now.Sub(last).Round(time.Second))
			if _, err := d.s.applySystem(&atollv1.Command{Actor: "system:health", Cmd: &atollv1.Command_SetNodeStatus{SetNodeStatus: &atollv1.SetNodeStatusCmd{
				NodeId: n.Id, Status: atollv1.NodeStatus_NODE_DOWN, Message: msg,
			}}}); err != nil {
				d.s.log.Warn("mark node down", "node", n.Id, "err", err)
				continue
			}
			if d.metrics != nil {
				d.metrics.NodesDown.Inc()
			}
			d.s.log.Warn("node is down", "node", n.Id, "name", n.Name, "why", msg)
		}
	}
}

// InstanceLogs implements api.LogSource: the leader asks the node's agent
// (only the leader holds the agents' session secrets). A follower relays
// whole GetAppLogs calls to the leader (applogs.go), so it gets here only
// when leadership moved in between: the caller retries.
func (d *dispatcher) InstanceLogs(ctx context.Context, in *atollv1.Instance, req *atollv1.InstanceLogsRequest, send func(*atollv1.LogLine) error) error {
	if !d.s.IsLeader() {
		return apierr.Unavailable("leadership changed while opening the logs of instance %s; retry", in.Id)
	}
	d.mu.Lock()
	sess := d.sessions[in.NodeId]
	d.mu.Unlock()
	if sess == nil || sess.agentAddr == "" {
		return apierr.Unavailable("the agent of node %s is not connected; its logs are not reachable now", in.NodeId)
	}
	conn, err := d.s.conn(sess.agentAddr)
	if err != nil {
		return err
	}
	r := proto.Clone(req).(*atollv1.InstanceLogsRequest)
	r.InstanceId = in.Id
	octx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+sess.secret)
	stream, err := atollv1.NewAgentLogServiceClient(conn).InstanceLogs(octx, r)
	if err != nil {
		return err
	}
	return pipe(stream.Recv, func(l *atollv1.LogLine) error {
		if l.InstanceId == "" {
			l.InstanceId = in.Id
		}
		return send(l)
	})
}

// pipe forwards every message of a stream until it ends.
func pipe[T any](recv func() (T, error), send func(T) error) error {
	for {
		m, err := recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := send(m); err != nil {
			return err
		}
	}
}

// leaderGRPC is the gRPC address of the current leader, if known.
func (s *Server) leaderGRPC() string {
	_, id := s.raft.LeaderWithID()
	if id == "" {
		return ""
	}
	st, _ := s.fsm.State()
	if m := st.Snapshot().Server(string(id)); m != nil {
		return m.GrpcAddress
	}
	return ""
}
