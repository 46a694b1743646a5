package agent

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/agent/router"
	"github.com/atollhq/atoll/internal/tlsutil"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/runtime"
)

// nodeIDFile is the file in the data dir that keeps the node id.
const nodeIDFile = "node-id"

// agentIDFile keeps the agent's own id (LabelAgent), made at the first start
// with this data dir; unlike the node id it never changes.
const agentIDFile = "agent-id"

// Agent is one host's agent. Create it with New and run it with Run.
type Agent struct {
	cfg    Config
	rt     runtime.Runtime
	log    *slog.Logger
	m      *metrics
	router *router.Router

	capacity, allocatable *atollv1.Resources
	routerLn, listenLn    net.Listener
	running               atomic.Bool

	// TLS: dialCreds dial the servers (plaintext without TLSCA); serverTLS
	// serves the log service (nil: plaintext). Both use the current
	// certificate and CA of certs (nil without TLS), reloaded by ReloadTLS
	// or a changed file.
	dialCreds credentials.TransportCredentials
	serverTLS *tls.Config
	certs     *tlsutil.Reloader

	nodeID      atomic.Pointer[string]
	agentID     string // LabelAgent on what this agent creates
	secret      atomic.Pointer[string]
	heartbeat   atomic.Int64 // ns
	usagePeriod atomic.Int64 // ns
	usageKick   chan struct{}

	// Desired state and workers.
	mu       sync.Mutex
	desired  map[string]*atollv1.Assignment
	workers  map[string]*worker
	removing map[string]chan struct{} // instance id -> closed when its old worker is gone
	ready    bool                     // the runtime answered and adoption can happen
	fullSeen bool                     // a full assignment set arrived
	wctx     context.Context          // parent of the workers
	workerWG sync.WaitGroup
	cleanup  chan struct{} // remove unclaimed containers
	// liveVolumes are the volume ids that exist (nil until the server lists them).
	liveVolumes map[string]bool

	// Reporting.
	statusMu   sync.Mutex
	statuses   map[string]*atollv1.InstanceStatus
	dirty      map[string]bool
	statusKick chan struct{}
	usageMu    sync.Mutex
	usage      *atollv1.UsageReport // latest, not yet sent
	usageReady chan struct{}
}

// New checks the configuration, reads the node id, measures the host and
// binds the router and log-service listeners (so RouterAddr and AgentAddr are
// known before Run).
func New(cfg Config, rt runtime.Runtime) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rt == nil {
		return nil, fmt.Errorf("%w: nil runtime", ErrInvalidConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Version == "" {
		cfg.Version = Version
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent data dir: %w", err)
	}
	dialCreds := insecure.NewCredentials()
	var serverTLS *tls.Config
	var certs *tlsutil.Reloader
	if cfg.TLSCA != "" || cfg.TLSCert != "" {
		var err error
		certs, err = tlsutil.NewReloader(tlsutil.ReloaderOptions{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CAFile: cfg.TLSCA, Logger: cfg.Logger.With("component", "agent")})
		if err != nil {
			return nil, err
		}
		if cfg.TLSCA != "" {
			dialCreds = certs.ClientCredentials("")
		}
		if cfg.TLSCert != "" {
			serverTLS = certs.ServerConfig()
		}
	}
	capacity, allocatable, err := detectCapacity(cfg)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:         cfg,
		rt:          rt,
		log:         cfg.Logger.With("component", "agent"),
		m:           newMetrics(cfg.Registerer),
		dialCreds:   dialCreds,
		serverTLS:   serverTLS,
		certs:       certs,
		capacity:    capacity,
		allocatable: allocatable,
		desired:     map[string]*atollv1.Assignment{},
		workers:     map[string]*worker{},
		removing:    map[string]chan struct{}{},
		cleanup:     make(chan struct{}, 1),
		statuses:    map[string]*atollv1.InstanceStatus{},
		dirty:       map[string]bool{},
		statusKick:  make(chan struct{}, 1),
		usageReady:  make(chan struct{}, 1),
		usageKick:   make(chan struct{}, 1),
	}
	a.router = router.New(router.WithLogger(a.log.With("component", "router")))
	a.heartbeat.Store(int64(cfg.DefaultHeartbeat))
	a.usagePeriod.Store(int64(cfg.DefaultUsagePeriod))
	if a.agentID, err = loadAgentID(cfg.DataDir); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, nodeIDFile))
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		a.nodeID.Store(&id)
	case errors.Is(err, os.ErrNotExist):
		empty := ""
		a.nodeID.Store(&empty)
	default:
		return nil, fmt.Errorf("read node id: %w", err)
	}
	empty := ""
	a.secret.Store(&empty)
	if a.routerLn, err = net.Listen("tcp", cfg.RouterAddr); err != nil {
		return nil, fmt.Errorf("router listen: %w", err)
	}
	if a.listenLn, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
		a.routerLn.Close()
		return nil, fmt.Errorf("agent listen: %w", err)
	}
	return a, nil
}

// NodeID returns the node id ("" until the first registration).
func (a *Agent) NodeID() string { return *a.nodeID.Load() }

// RouterAddr returns the address the HTTP router listens on.
func (a *Agent) RouterAddr() string { return a.routerLn.Addr().String() }

// AgentAddr returns the address AgentLogService listens on.
func (a *Agent) AgentAddr() string { return a.listenLn.Addr().String() }

// ReloadTLS re-reads the TLS files (--tls-ca, --tls-cert, --tls-key; atoll
// agent calls it on SIGHUP, and a changed file is also noticed by the next
// handshake after tlsutil.DefaultCheckInterval). New connections use them;
// a file that fails to load keeps the previous one, is logged and
// returned. Without TLS it does nothing.
func (a *Agent) ReloadTLS() error {
	if a.certs == nil {
		return nil
	}
	return a.certs.Reload()
}

// Router returns the agent's router (its table can be read in tests).
func (a *Agent) Router() *router.Router { return a.router }

// Capacity returns the measured capacity and the allocatable resources.
func (a *Agent) Capacity() (capacity, allocatable *atollv1.Resources) {
	return proto.Clone(a.capacity).(*atollv1.Resources), proto.Clone(a.allocatable).(*atollv1.Resources)
}

// Status returns the latest status of an instance.
func (a *Agent) Status(instanceID string) (*atollv1.InstanceStatus, bool) {
	a.statusMu.Lock()
	defer a.statusMu.Unlock()
	s, ok := a.statuses[instanceID]
	if !ok {
		return nil, false
	}
	return proto.Clone(s).(*atollv1.InstanceStatus), true
}

// Run runs the agent until ctx is done: the session with the control plane,
// the instances' reconcile loops, usage collection, the router and the log
// service. Containers are left running when it returns. Run is called once;
// it closes the listeners on return.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.mu.Lock()
	a.wctx = ctx
	a.mu.Unlock()

	httpSrv := &http.Server{Handler: a.router, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	gopts := append([]grpc.ServerOption{grpc.StreamInterceptor(a.authStream)}, logServerOptions()...)
	if a.serverTLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(a.serverTLS)))
	}
	grpcSrv := grpc.NewServer(gopts...)
	atollv1.RegisterAgentLogServiceServer(grpcSrv, &logService{a: a})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := httpSrv.Serve(a.routerLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("router stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := grpcSrv.Serve(a.listenLn); err != nil {
			a.log.Error("agent service stopped", "err", err)
		}
	})
	wg.Go(func() { a.runtimeLoop(ctx) })
	wg.Go(func() { a.usageLoop(ctx) })
	wg.Go(func() { a.sessionLoop(ctx) })
	a.log.Info("agent started", "servers", a.cfg.Servers, "router", a.RouterAddr(), "listen", a.AgentAddr(),
		"capacity", a.capacity.String(), "allocatable", a.allocatable.String())

	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	httpSrv.Shutdown(sctx)
	scancel()
	grpcSrv.Stop()
	wg.Wait()
	a.workerWG.Wait()
	a.log.Info("agent stopped; containers keep running")
	return nil
}

// saveNodeID persists id when it differs from the one kept.
func (a *Agent) saveNodeID(id string) error {
	if id == "" || id == a.NodeID() {
		return nil
	}
	p := filepath.Join(a.cfg.DataDir, nodeIDFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return fmt.Errorf("save node id: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("save node id: %w", err)
	}
	a.nodeID.Store(&id)
	return nil
}

// applyAssignments folds one Assignments message into the desired state.
func (a *Agent) applyAssignments(msg *atollv1.Assignments) {
	if len(msg.Routes) > 0 {
		table := make(map[string][]string, len(msg.Routes))
		for h, t := range msg.Routes {
			table[h] = t.GetAddresses()
		}
		a.router.SetRoutes(table)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if msg.Full {
		a.desired = map[string]*atollv1.Assignment{}
		a.fullSeen = true
	}
	for _, as := range msg.Upsert {
		if as.GetInstanceId() == "" {
			a.log.Warn("assignment without instance id ignored")
			continue
		}
		a.desired[as.InstanceId] = as
	}
	for _, id := range msg.Remove {
		delete(a.desired, id)
	}
	a.syncLocked()
	if msg.VolumesListed {
		a.liveVolumes = make(map[string]bool, len(msg.LiveVolumes))
		for _, id := range msg.LiveVolumes {
			a.liveVolumes[id] = true
		}
	}
	if msg.Full || msg.VolumesListed {
		select {
		case a.cleanup <- struct{}{}:
		default:
		}
	}
}

// syncLocked starts a worker for every desired instance without one, updates
// the others, and retires the workers of instances no longer desired. a.mu
// must be held.
func (a *Agent) syncLocked() {
	if !a.ready || a.wctx == nil {
		return
	}
	for id, w := range a.workers {
		if _, ok := a.desired[id]; !ok {
			done := w.done
			a.removing[id] = done
			delete(a.workers, id)
			w.retire()
			go func() {
				<-done
				a.mu.Lock()
				if a.removing[id] == done {
					delete(a.removing, id)
				}
				a.mu.Unlock()
			}()
		}
	}
	for id, as := range a.desired {
		if w, ok := a.workers[id]; ok {
			w.update(as)
			continue
		}
		w := newWorker(a, as, a.removing[id])
		a.workers[id] = w
		a.workerWG.Go(func() { w.run(a.wctx) })
	}
}

// report records an instance's status and schedules it for the next batch.
func (a *Agent) report(st *atollv1.InstanceStatus) {
	a.statusMu.Lock()
	if old, ok := a.statuses[st.InstanceId]; ok && proto.Equal(old, st) {
		a.statusMu.Unlock()
		return
	}
	a.statuses[st.InstanceId] = st
	a.dirty[st.InstanceId] = true
	a.m.setInstances(a.statuses)
	a.statusMu.Unlock()
	a.log.Debug("instance status", "instance", st.InstanceId, "state", stateName(st.State), "error", st.Error)
	select {
	case a.statusKick <- struct{}{}:
	default:
	}
}

// forget drops a removed instance's status.
func (a *Agent) forget(id string) {
	a.statusMu.Lock()
	delete(a.statuses, id)
	delete(a.dirty, id)
	a.m.setInstances(a.statuses)
	a.statusMu.Unlock()
}

// takeStatuses returns the changed statuses (all of them with all=true) and
// clears the changed set.
func (a *Agent) takeStatuses(all bool) []*atollv1.InstanceStatus {
	a.statusMu.Lock()
	defer a.statusMu.Unlock()
	var out []*atollv1.InstanceStatus
	for id, s := range a.statuses {
		if all || a.dirty[id] {
			out = append(out, proto.Clone(s).(*atollv1.InstanceStatus))
		}
	}
	clear(a.dirty)
	return out
}

// runtimeLoop waits for the runtime to answer (logging once if it does
// not), lets the workers start, then lists container states every
// PollInterval to notice exits, and removes unclaimed containers after
// every full assignment set.
func (a *Agent) runtimeLoop(ctx context.Context) {
	bo := newBackoff(a.cfg.BackoffMin, a.cfg.BackoffMax)
	warned := false
	for {
		_, err := a.listManaged(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		if !warned {
			a.log.Error("container runtime not reachable; instances will start once it answers (retrying)", "err", err)
			warned = true
		}
		if !sleepCtx(ctx, bo.next()) {
			return
		}
	}
	if warned {
		a.log.Info("container runtime reachable again")
	}
	a.removeStaleProbes(ctx)
	a.mu.Lock()
	a.ready = true
	a.syncLocked()
	full := a.fullSeen
	a.mu.Unlock()
	if full {
		a.removeUnclaimed(ctx)
	}
	t := time.NewTicker(a.cfg.PollInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.cleanup:
			a.removeUnclaimed(ctx)
		case <-t.C:
			cs, err := a.listManaged(ctx)
			if err != nil {
				if !failing && ctx.Err() == nil {
					a.log.Warn("listing containers failed", "err", err)
				}
				failing = true
				continue
			}
			if failing {
				a.log.Info("listing containers works again")
				failing = false
			}
			byName := make(map[string]runtime.ContainerInfo, len(cs))
			for _, c := range cs {
				byName[c.Name] = c
			}
			a.mu.Lock()
			for _, w := range a.workers {
				c, ok := byName[w.name]
				w.observe(ok && c.Running())
			}
			a.mu.Unlock()
		}
	}
}

// listManaged lists the containers that carry LabelAlloc (and the
// configured ContainerLabels).
func (a *Agent) listManaged(ctx context.Context) ([]runtime.ContainerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RuntimeTimeout)
	defer cancel()
	cs, err := a.rt.List(ctx, a.cfg.ContainerLabels)
	if err != nil {
		return nil, err
	}
	out := cs[:0]
	for _, c := range cs {
		if c.Labels[runtime.LabelAlloc] != "" && a.owns(c.Labels) {
			out = append(out, c)
		}
	}
	return out, nil
}

// removeUnclaimed stops and removes the managed containers no assignment
// claims. It runs only once a full set has arrived.
func (a *Agent) removeUnclaimed(ctx context.Context) {
	a.mu.Lock()
	ok := a.ready && a.fullSeen
	a.mu.Unlock()
	if !ok {
		return
	}
	cs, err := a.listManaged(ctx)
	if err != nil {
		a.log.Warn("adoption: listing containers failed; will retry on the next full set", "err", err)
		return
	}
	for _, c := range cs {
		id := c.Labels[runtime.LabelAlloc]
		a.mu.Lock()
		_, wanted := a.desired[id]
		_, hasWorker := a.workers[id]
		_, beingRemoved := a.removing[id]
		a.mu.Unlock()
		if wanted || hasWorker || beingRemoved {
			continue
		}
		a.log.Info("removing unclaimed container", "container", c.Name, "instance", id)
		rctx, cancel := context.WithTimeout(ctx, a.cfg.StopTimeout+a.cfg.RuntimeTimeout)
		err := a.rt.Stop(rctx, c.ID, a.cfg.StopTimeout)
		if err == nil || errors.Is(err, runtime.ErrNotFound) {
			err = a.rt.Remove(rctx, c.ID)
		}
		cancel()
		if err != nil {
			a.log.Warn("removing unclaimed container failed", "container", c.Name, "err", err)
		}
	}
	a.removeDeletedVolumes(ctx)
	a.removeStaleProbes(ctx)
}

// removeStaleProbes removes the runtime's helper containers (see
// runtime.ProbeRemover) that an agent process which died mid-lookup, or a
// failed removal, left behind: at start-up, before any worker runs, and
// after every adoption pass.
func (a *Agent) removeStaleProbes(ctx context.Context) {
	pr, ok := a.rt.(runtime.ProbeRemover)
	if !ok {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, a.cfg.RuntimeTimeout)
	defer cancel()
	n, err := pr.RemoveStaleProbes(rctx, a.ownLabels())
	if n > 0 {
		a.log.Info("removed stale probe containers", "count", n)
	}
	if err != nil && ctx.Err() == nil {
		a.log.Warn("removing stale probe containers failed; will retry after the next full set", "err", err)
	}
}

// removeDeletedVolumes removes the Docker volumes of atoll volumes that no
// longer exist in the control plane. Volumes still in use by a container
// are kept (and retried on the next list).
func (a *Agent) removeDeletedVolumes(ctx context.Context) {
	a.mu.Lock()
	live := a.liveVolumes
	a.mu.Unlock()
	if live == nil {
		return
	}
	vols, err := a.rt.ListVolumes(ctx, a.cfg.ContainerLabels)
	if err != nil {
		a.log.Warn("listing volumes failed", "err", err)
		return
	}
	for _, v := range vols {
		id := v.Labels[LabelVolume]
		if id == "" || live[id] || !a.owns(v.Labels) {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, a.cfg.RuntimeTimeout)
		err := a.rt.RemoveVolume(rctx, v.Name)
		cancel()
		switch {
		case err == nil:
			a.log.Info("removed the data of a deleted volume", "volume", v.Name, "id", id)
		case errors.Is(err, runtime.ErrVolumeInUse):
		default:
			a.log.Warn("removing a deleted volume failed", "volume", v.Name, "err", err)
		}
	}
}

// sleepCtx waits d or until ctx is done; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// loadAgentID reads the agent id kept in dataDir, or makes and keeps one.
func loadAgentID(dataDir string) (string, error) {
	p := filepath.Join(dataDir, agentIDFile)
	b, err := os.ReadFile(p)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read agent id: %w", err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(r[:])
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save agent id: %w", err)
	}
	return id, nil
}

// ownLabels are the labels of everything this agent creates:
// ContainerLabels and LabelAgent.
func (a *Agent) ownLabels() map[string]string {
	labels := maps.Clone(a.cfg.ContainerLabels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelAgent] = a.agentID
	return labels
}

// owns reports whether a container or volume with these labels is this
// agent's to adopt or remove: made by it, or by a version of the agent that
// did not label its own (no LabelAgent).
func (a *Agent) owns(labels map[string]string) bool {
	id, ok := labels[LabelAgent]
	return !ok || id == a.agentID
}
