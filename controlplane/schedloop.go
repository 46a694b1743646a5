package controlplane

import (
	"context"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/scheduler"
)

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
		plan := computePlan(tx, seed)
		seed++
		if plan != nil {
			_, err := s.applySystem(&atollv1.Command{Actor: "system:scheduler", Cmd: &atollv1.Command_ApplyPlan{ApplyPlan: plan}})
			s.schedMetrics.observe(plan, time.Since(start), err)
			switch {
			case err == nil:
				continue // look again at once: the plan changed the state
			case status.Code(err) == codes.Aborted:
				s.log.Debug("scheduler plan was stale; re-evaluating", "err", err)
				continue
			default:
				s.log.Warn("scheduler plan failed", "err", err)
			}
		}
		if !waitAny(ctx, 5*time.Second, watches...) {
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

// computePlan decides placements and stops for every app; nil when there is nothing to do.
func computePlan(tx *state.Txn, seed int64) *atollv1.ApplyPlanCmd {
	nodes, _ := tx.Nodes()
	instances, _ := tx.AllInstances()
	in := scheduler.Input{}
	for _, n := range nodes {
		st := scheduler.NodeReady
		switch n.Status {
		case atollv1.NodeStatus_NODE_DOWN:
			st = scheduler.NodeDown
		case atollv1.NodeStatus_NODE_DRAINING:
			st = scheduler.NodeDraining
		}
		in.Nodes = append(in.Nodes, scheduler.Node{ID: n.Id, Status: st, Capacity: schedRes(n.Capacity), Allocatable: schedRes(n.Allocatable), Labels: n.Labels})
	}
	byApp := map[string][]*atollv1.Instance{}
	for _, i := range instances {
		byApp[i.AppId] = append(byApp[i.AppId], i)
	}
	plan := &atollv1.ApplyPlanCmd{AppVersions: map[string]int64{}, NodeIndexes: map[string]uint64{}, Unplaced: map[string]string{}}
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
	appsByKey := map[string]*atollv1.App{}
	for _, app := range apps {
		insts := byApp[app.Id]
		run, keep := envRunnable(tx.Environment(app.EnvIdRef))
		if keep && !app.IsDeleted {
			continue
		}
		desired := 0
		if run && fsm.AppActive(app) {
			desired = int(app.Replicas)
		}
		var cur, old []*atollv1.Instance
		runningCur := 0
		for _, i := range insts {
			if i.AppVersion == app.Version {
				cur = append(cur, i)
				if i.State == atollv1.InstanceState_INSTANCE_RUNNING {
					runningCur++
				}
			} else {
				old = append(old, i)
			}
		}
		target := desired
		if len(old) > 0 && desired > 0 {
			// Rolling replacement: one new instance at a time, an old one
			// stops once a new one runs.
			target = min(desired, runningCur+1)
			excess := runningCur + len(old) - desired
			sort.Slice(old, func(a, b int) bool {
				return old[a].State != atollv1.InstanceState_INSTANCE_RUNNING && old[b].State == atollv1.InstanceState_INSTANCE_RUNNING
			})
			for k := 0; k < excess && k < len(old); k++ {
				stop(old[k])
			}
		} else {
			for _, i := range old {
				stop(i)
			}
		}
		if len(cur) == 0 && target == 0 {
			continue
		}
		key := appKey(app.Id, app.Version)
		appsByKey[key] = app
		in.Requests = append(in.Requests, scheduler.Request{AppID: key, Replicas: target, Resources: schedRes(app.Requests)})
	}
	for _, i := range instances {
		if stopping[i.Id] {
			continue
		}
		in.Allocations = append(in.Allocations, scheduler.Allocation{ID: i.Id, AppID: appKey(i.AppId, i.AppVersion), NodeID: i.NodeId, Resources: schedRes(i.Resources)})
	}
	p, err := scheduler.Schedule(in, scheduler.Options{Seed: seed})
	if err != nil {
		return nil
	}
	for _, st := range p.Stops {
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
			AppVersion: app.Version, Replica: replica[app.Id], Resources: app.Requests,
		})
		plan.AppVersions[app.Id] = app.Version
		plan.NodeIndexes[pl.NodeID] = nodeIdx[pl.NodeID]
	}
	for _, u := range p.Unplaced {
		app := appsByKey[u.AppID]
		if app == nil {
			continue
		}
		why := u.Reasons.String()
		if app.GetStatus().GetMessage() != why {
			plan.Unplaced[app.Id] = why
			plan.AppVersions[app.Id] = app.Version
		}
	}
	// Clear a stale "unschedulable" message of apps that are now fully placed.
	for key, app := range appsByKey {
		if app.GetStatus().GetMessage() == "" {
			continue
		}
		unplaced := false
		for _, u := range p.Unplaced {
			unplaced = unplaced || u.AppID == key
		}
		if !unplaced {
			plan.AppVersions[app.Id] = app.Version
		}
	}
	if len(plan.Place) == 0 && len(plan.Stop) == 0 && len(plan.Unplaced) == 0 && !clearsMessages(tx, plan) {
		return nil
	}
	return plan
}

func clearsMessages(tx *state.Txn, plan *atollv1.ApplyPlanCmd) bool {
	for appID := range plan.AppVersions {
		if a := tx.App(appID); a != nil && a.GetStatus().GetMessage() != "" {
			if _, still := plan.Unplaced[appID]; !still {
				return true
			}
		}
	}
	return false
}

func appVersion(tx *state.Txn, appID string) int64 {
	if a := tx.App(appID); a != nil {
		return a.Version
	}
	return 0
}
