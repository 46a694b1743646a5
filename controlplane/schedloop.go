package controlplane

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/scheduler"
)

// maxPlanPlacements bounds the placements of one ApplyPlan command: a big
// evaluation is committed as several commands (stops first), so no raft
// entry grows without bound and followers apply it in steps.
const maxPlanPlacements = 16384

// schedulerLoop runs on the leader: whenever apps, instances or nodes
// change, it computes a plan on a snapshot and commits it through raft. The
// state machine refuses a stale plan whole; the loop then tries again on
// fresh state.
func (s *Server) schedulerLoop(ctx context.Context) {
	seed := int64(1)
	for ctx.Err() == nil {
		st, restored := s.fsm.State()
		tx := st.Snapshot()
		watches := []<-chan struct{}{tx.TableWatch(state.TableApps), tx.TableWatch(state.TableInstances),
			tx.TableWatch(state.TableNodes), tx.TableWatch(state.TableEnvironments), restored}
		start := time.Now()
		ev := evaluate(tx, seed, evalOptions{now: start, minHealthy: s.cfg.RolloutMinHealthy})
		seed++
		again := ev.plan != nil && s.commitPlan(ev.plan)
		s.schedMetrics.evaluated(ev, time.Since(start))
		if again {
			continue // look again at once: the plan changed the state (or was stale)
		}
		wait := 5 * time.Second
		if ev.recheck > 0 {
			wait = min(wait, ev.recheck) // a new instance becomes healthy then
		}
		if !waitAny(ctx, wait, watches...) {
			return
		}
		// Let a burst of changes settle into one evaluation.
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// commitPlan applies a plan in chunks; true when the state changed or the
// plan was stale (evaluate again now), false after another error.
func (s *Server) commitPlan(plan *atollv1.ApplyPlanCmd) bool {
	for k, chunk := range splitPlan(plan, maxPlanPlacements) {
		_, err := s.applySystem(&atollv1.Command{Actor: "system:scheduler", Cmd: &atollv1.Command_ApplyPlan{ApplyPlan: chunk}})
		s.schedMetrics.committed(chunk, err)
		switch {
		case err == nil:
		case status.Code(err) == codes.Aborted:
			s.log.Debug("scheduler plan was stale; re-evaluating", "err", err)
			return true
		default:
			s.log.Warn("scheduler plan failed", "err", err)
			return k > 0
		}
	}
	return true
}

// splitPlan cuts a plan into commands of at most max placements. The first
// carries every stop and status message, so each later one only adds
// instances where the earlier ones left room: any prefix of the chunks is a
// valid plan on its own.
func splitPlan(p *atollv1.ApplyPlanCmd, max int) []*atollv1.ApplyPlanCmd {
	if len(p.Place) <= max {
		return []*atollv1.ApplyPlanCmd{p}
	}
	var out []*atollv1.ApplyPlanCmd
	first := &atollv1.ApplyPlanCmd{Stop: p.Stop, Unplaced: p.Unplaced, AppVersions: maps.Clone(p.AppVersions), NodeIndexes: map[string]uint64{}}
	cur := first
	for _, in := range p.Place {
		if len(cur.Place) == max {
			out = append(out, cur)
			cur = &atollv1.ApplyPlanCmd{AppVersions: map[string]int64{}, NodeIndexes: map[string]uint64{}}
		}
		cur.Place = append(cur.Place, in)
		cur.AppVersions[in.AppId] = p.AppVersions[in.AppId]
		cur.NodeIndexes[in.NodeId] = p.NodeIndexes[in.NodeId]
	}
	return append(out, cur)
}

// waitAny blocks until a channel fires, the timeout passes (true), or ctx ends (false).
func waitAny(ctx context.Context, timeout time.Duration, chs ...<-chan struct{}) bool {
	fired := make(chan struct{}, 1)
	stop := make(chan struct{})
	defer close(stop)
	for _, ch := range chs {
		if ch == nil {
			continue
		}
		go func(ch <-chan struct{}) {
			select {
			case <-ch:
				select {
				case fired <- struct{}{}:
				default:
				}
			case <-stop:
			}
		}(ch)
	}
	select {
	case <-ctx.Done():
		return false
	case <-fired:
	case <-time.After(timeout):
	}
	return true
}

func appKey(appID string, version int64) string { return appID + "@" + itoa64(version) }

func itoa64(v int64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := v < 0
	if neg {
		v = -v
	}
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

func schedRes(r *atollv1.Resources) scheduler.Resources {
	return scheduler.Resources{CPU: int64(r.GetCpu()), MemoryMB: int64(r.GetMemory()), StorageMB: int64(r.GetStorage())}
}

// envRunnable says whether an environment's apps should have instances placed.
func envRunnable(e *atollv1.Environment) (run, keep bool) {
	if e == nil || e.IsDeleted {
		return false, false
	}
	switch e.Status {
	case atollv1.EnvironmentStatus_STOPPED, atollv1.EnvironmentStatus_STOPPING, atollv1.EnvironmentStatus_HIBERNATING,
		atollv1.EnvironmentStatus_SLEEPING, atollv1.EnvironmentStatus_TERMINATING:
		return false, true // leave its instances as they are
	}
	return true, false
}

// evaluation is the outcome of one scheduler pass.
type evaluation struct {
	plan     *atollv1.ApplyPlanCmd // nil: nothing to commit
	unplaced map[string]string     // every app with replicas left unplaced -> why
	recheck  time.Duration         // > 0: evaluate again after this long (a rollout waits for a healthy instance)
}

// evalOptions are the leader's inputs to an evaluation besides the state.
type evalOptions struct {
	now        time.Time
	minHealthy time.Duration // a new instance of a rollout must have run this long
}

// computePlan decides placements and stops for every app; nil when there is nothing to do.
func computePlan(tx *state.Txn, seed int64) *atollv1.ApplyPlanCmd {
	return evaluate(tx, seed, evalOptions{now: time.Now()}).plan
}

// appView is one app's instances as the loop sees them.
type appView struct {
	app       *atollv1.App
	desired   int
	cur, old  []*atollv1.Instance
	onDrain   []*atollv1.Instance // current version, on a draining node, not stopping
	ready     int                 // current version on ready nodes
	running   int                 // of which RUNNING
	drainMove bool                // drain managed here (no rollout under way)
	moveMore  int                 // replacements to start for draining instances now
}

// evaluate computes one plan on a snapshot.
//
// Drain: instances on a draining node are replaced one at a time per node.
// The replacement is placed on a ready node first; the draining instance is
// stopped only once the app has its desired replicas RUNNING without it. An
// instance that cannot be placed elsewhere keeps running, the app's status
// message says why (and the node's drain progress, see api.DrainBlockedPrefix),
// and the node's other instances move on without it.
//
// Rollout: when an app's spec changed, its instances of older versions are
// replaced as scheduler.PlanRollout says (start-first, one at a time;
// stop-first for apps with volumes). A new instance counts once it has been
// RUNNING for minHealthy.
func evaluate(tx *state.Txn, seed int64, opts evalOptions) evaluation {
	nodes, _ := tx.Nodes()
	instances, _ := tx.AllInstances()
	in := scheduler.Input{}
	nodeStatus := make(map[string]atollv1.NodeStatus, len(nodes))
	for _, n := range nodes {
		nodeStatus[n.Id] = n.Status
		st := scheduler.NodeReady
		switch n.Status {
		case atollv1.NodeStatus_NODE_DOWN:
			st = scheduler.NodeDown
		case atollv1.NodeStatus_NODE_DRAINING:
			st = scheduler.NodeDraining
		}
		labels := make(map[string]string, len(n.Labels)+1)
		for k, v := range n.Labels {
			labels[k] = v
		}
		labels[nodeIDLabel] = n.Id
		in.Nodes = append(in.Nodes, scheduler.Node{ID: n.Id, Status: st, Capacity: schedRes(n.Capacity), Allocatable: schedRes(n.Allocatable), Labels: labels})
	}
	byApp := map[string][]*atollv1.Instance{}
	for _, i := range instances {
		byApp[i.AppId] = append(byApp[i.AppId], i)
	}
	plan := &atollv1.ApplyPlanCmd{AppVersions: map[string]int64{}, NodeIndexes: map[string]uint64{}, Unplaced: map[string]string{}}
	ev := evaluation{unplaced: map[string]string{}}
	stopping := map[string]bool{}
	stop := func(i *atollv1.Instance) {
		if !stopping[i.Id] {
			stopping[i.Id] = true
			plan.Stop = append(plan.Stop, i.Id)
			plan.AppVersions[i.AppId] = appVersion(tx, i.AppId)
		}
	}
	apps := tx.AllApps()
	sort.Slice(apps, func(i, j int) bool { return apps[i].CreateIndex < apps[j].CreateIndex })

	// Pass 1: classify instances, rollout stops, drain stops.
	var views []*appView
	viewByApp := map[string]*appView{}
	for _, app := range apps {
		run, keep := envRunnable(tx.Environment(app.EnvIdRef))
		if keep && !app.IsDeleted {
			continue
		}
		v := &appView{app: app}
		if run && fsm.AppActive(app) {
			v.desired = int(app.Replicas)
		}
		spec := fsm.SpecVersion(app)
		for _, i := range byApp[app.Id] {
			if i.AppVersion != spec {
				v.old = append(v.old, i)
				continue
			}
			v.cur = append(v.cur, i)
			isRunning := i.State == atollv1.InstanceState_INSTANCE_RUNNING
			switch nodeStatus[i.NodeId] {
			case atollv1.NodeStatus_NODE_READY:
				v.ready++
				if isRunning {
					v.running++
				}
			case atollv1.NodeStatus_NODE_DRAINING:
				v.onDrain = append(v.onDrain, i)
			}
		}
		if len(v.old) > 0 && v.desired > 0 {
			r := scheduler.Rollout{Desired: v.desired, Version: spec, StopFirst: fsm.StopFirst(app),
				NoRoom: app.GetStatus().GetMessage() != ""}
			byID := map[string]*atollv1.Instance{}
			for _, i := range append(slices.Clone(v.cur), v.old...) {
				byID[i.Id] = i
				running := i.State == atollv1.InstanceState_INSTANCE_RUNNING && nodeStatus[i.NodeId] != atollv1.NodeStatus_NODE_DOWN
				ri := scheduler.RolloutInstance{ID: i.Id, Version: i.AppVersion, Running: running}
				if running && i.AppVersion == spec {
					left := healthyIn(i, opts)
					// With a health check, it must pass too (the agent's
					// report changes the instance: evaluated again then).
					ri.Healthy = left <= 0 && (app.HealthCheck == nil || i.Healthy)
					if left > 0 && (ev.recheck == 0 || left < ev.recheck) {
						ev.recheck = left
					}
				}
				r.Instances = append(r.Instances, ri)
			}
			step := scheduler.PlanRollout(r)
			for _, id := range step.Stop {
				stop(byID[id])
			}
			v.desired = step.Target
		} else {
			for _, i := range v.old {
				stop(i)
			}
			v.drainMove = true
			// Stop draining instances the running replicas elsewhere cover
			// (not RUNNING ones first).
			if n := min(len(v.onDrain), v.running+len(v.onDrain)-v.desired); n > 0 {
				sort.SliceStable(v.onDrain, func(a, b int) bool {
					ra, rb := v.onDrain[a].State == atollv1.InstanceState_INSTANCE_RUNNING, v.onDrain[b].State == atollv1.InstanceState_INSTANCE_RUNNING
					return !ra && rb || ra == rb && v.onDrain[a].Id < v.onDrain[b].Id
				})
				for _, i := range v.onDrain[:n] {
					stop(i)
				}
				v.onDrain = v.onDrain[n:]
			}
		}
		views = append(views, v)
		viewByApp[app.Id] = v
	}

	// Pass 2: one move in flight per draining node. A node is busy while an
	// app with instances on it has a replacement placed but its draining
	// instance not stopped yet.
	//
	// An app whose replacement could not be placed (an earlier evaluation
	// said so in its status message) does not hold its node up: the node's
	// next instance moves instead, and the blocked app asks for one more
	// replica on every evaluation, so it moves as soon as there is room and
	// its message stays current. Its draining instances keep running.
	inflight := func(v *appView) int { return max(0, v.ready-max(0, v.desired-len(v.onDrain))) }
	blocked := func(v *appView) bool {
		return strings.HasPrefix(v.app.GetStatus().GetMessage(), api.DrainBlockedPrefix)
	}
	drainInsts := map[string][]*atollv1.Instance{}
	for _, v := range views {
		if !v.drainMove {
			continue
		}
		for _, i := range v.onDrain {
			drainInsts[i.NodeId] = append(drainInsts[i.NodeId], i)
		}
		if len(v.onDrain) > 0 && blocked(v) {
			v.moveMore = 1
		}
	}
	drainNodes := make([]string, 0, len(drainInsts))
	for id := range drainInsts {
		drainNodes = append(drainNodes, id)
	}
	sort.Strings(drainNodes)
	for _, nodeID := range drainNodes {
		insts := drainInsts[nodeID]
		busy := false
		for _, i := range insts {
			busy = busy || inflight(viewByApp[i.AppId]) > 0
		}
		if busy {
			continue
		}
		sort.Slice(insts, func(a, b int) bool {
			ca, cb := viewByApp[insts[a].AppId].app.CreateIndex, viewByApp[insts[b].AppId].app.CreateIndex
			return ca < cb || ca == cb && insts[a].Id < insts[b].Id
		})
		for _, i := range insts {
			if v := viewByApp[i.AppId]; !blocked(v) {
				v.moveMore++
				break
			}
		}
	}

	// Pass 3: the scheduler places what is missing.
	appsByKey := map[string]*atollv1.App{}
	for _, v := range views {
		target := v.desired
		if v.drainMove && len(v.onDrain) > 0 {
			// Draining instances count as replicas until moved; the ones
			// being moved get a replacement.
			target = max(0, v.desired-len(v.onDrain)) + max(inflight(v), v.moveMore)
		}
		if len(v.cur) == 0 && target == 0 {
			continue
		}
		key := appKey(v.app.Id, fsm.SpecVersion(v.app))
		appsByKey[key] = v.app
		pins, unpinned := volumePins(tx, v.app)
		if unpinned && len(v.cur) == 0 {
			target = min(target, 1) // the first replica decides where the volume lives
		}
		in.Requests = append(in.Requests, scheduler.Request{AppID: key, Replicas: target, Resources: schedRes(v.app.Requests), Constraints: pins})
	}
	for _, i := range instances {
		if stopping[i.Id] {
			continue
		}
		in.Allocations = append(in.Allocations, scheduler.Allocation{ID: i.Id, AppID: appKey(i.AppId, i.AppVersion), NodeID: i.NodeId, Resources: schedRes(i.Resources), CreateIndex: i.CreateIndex})
	}
	p, err := scheduler.Schedule(in, scheduler.Options{Seed: seed})
	if err != nil {
		return ev
	}
	for _, st := range p.Stops {
		if st.Reason == scheduler.StopNodeDraining {
			continue // drain stops are decided above, once replacements run
		}
		if i := tx.Instance(st.AllocationID); i != nil {
			stop(i)
		}
	}
	nodeIdx := map[string]uint64{}
	for _, n := range nodes {
		nodeIdx[n.Id] = n.ModifyIndex
	}
	replica := map[string]int32{}
	for _, pl := range p.Placements {
		app := appsByKey[pl.AppID]
		if app == nil {
			continue
		}
		replica[app.Id]++
		plan.Place = append(plan.Place, &atollv1.Instance{
			Id: api.NewID("inst"), AppId: app.Id, EnvId: app.EnvIdRef, OrgId: app.OrgId, NodeId: pl.NodeID,
			AppVersion: fsm.SpecVersion(app), Replica: replica[app.Id], Resources: app.Requests,
		})
		plan.AppVersions[app.Id] = app.Version
		plan.NodeIndexes[pl.NodeID] = nodeIdx[pl.NodeID]
	}
	unplacedKeys := map[string]bool{}
	for _, u := range p.Unplaced {
		app := appsByKey[u.AppID]
		if app == nil {
			continue
		}
		unplacedKeys[u.AppID] = true
		why := explainPins(u.Reasons.String())
		if v := viewByApp[app.Id]; v != nil && v.drainMove && len(v.onDrain) > 0 {
			why = api.DrainBlockedPrefix + why
		}
		ev.unplaced[app.Id] = why
		if app.GetStatus().GetMessage() != why {
			plan.Unplaced[app.Id] = why
			plan.AppVersions[app.Id] = app.Version
		}
	}
	// Clear a stale "unschedulable" message of apps that are now fully placed.
	clears := false
	for key, app := range appsByKey {
		if app.GetStatus().GetMessage() != "" && !unplacedKeys[key] {
			plan.AppVersions[app.Id] = app.Version
			clears = true
		}
	}
	if len(plan.Place) > 0 || len(plan.Stop) > 0 || len(plan.Unplaced) > 0 || clears {
		ev.plan = plan
	}
	return ev
}

// healthyIn is how long a RUNNING instance must still run to count as
// healthy for a rollout (<= 0: it is).
func healthyIn(i *atollv1.Instance, opts evalOptions) time.Duration {
	if opts.minHealthy <= 0 {
		return 0
	}
	if i.RunningSince == nil {
		return opts.minHealthy // reported RUNNING before running_since existed: count from now
	}
	return i.RunningSince.AsTime().Add(opts.minHealthy).Sub(opts.now)
}

func appVersion(tx *state.Txn, appID string) int64 {
	if a := tx.App(appID); a != nil {
		return a.Version
	}
	return 0
}

// nodeIDLabel is a synthetic node label the scheduler sees, so instances
// can be pinned to the node that holds their volumes' data.
const nodeIDLabel = "atoll.node.id"

// volumePins constrains an app to the nodes its volumes live on (a volume
// is a Docker volume on one node: its data does not move), and reports
// whether some volume is not placed yet.
func volumePins(tx *state.Txn, app *atollv1.App) (pins []scheduler.Constraint, unpinned bool) {
	seen := map[string]bool{}
	for _, m := range app.VolumeMounts {
		vol := tx.Volume(m.VolIdRef)
		switch {
		case vol == nil:
		case vol.NodeId == "":
			unpinned = true
		case !seen[vol.NodeId]:
			seen[vol.NodeId] = true
			pins = append(pins, scheduler.Constraint{Key: nodeIDLabel, Op: scheduler.OpEqual, Values: []string{vol.NodeId}})
		}
	}
	return pins, unpinned
}

// explainPins rewrites the scheduler's constraint text for volume pins.
func explainPins(why string) string {
	const prefix = "constraint " + nodeIDLabel + "="
	for {
		i := strings.Index(why, prefix)
		if i < 0 {
			return why
		}
		rest := why[i+len(prefix):]
		j := strings.Index(rest, " not met")
		if j < 0 {
			return why
		}
		why = why[:i] + "volume data on node " + rest[:j] + why[i+len(prefix)+j+len(" not met"):]
	}
}
