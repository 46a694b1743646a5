package fsm

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/quota"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// NodeAllocated sums the requests of the instances placed on a node.
func NodeAllocated(tx *state.Txn, nodeID string) quota.Vec {
	var v quota.Vec
	for _, in := range tx.NodeInstances(nodeID) {
		v = v.Add(quota.Of(in.Resources))
	}
	return v
}

func (a *applier) applyUpsertNode(c *atollv1.UpsertNodeCmd) (*atollv1.Node, error) {
	n := c.GetNode()
	if n.GetId() == "" {
		return nil, apierr.InvalidField("node.id", "is required")
	}
	if cur := a.tx.Node(n.Id); cur != nil {
		n.CreateIndex, n.RegisteredAt, n.Drain = cur.CreateIndex, cur.RegisteredAt, cur.Drain
		if cur.RegisteredByToken != "" {
			n.RegisteredByToken = cur.RegisteredByToken // the first token owns the node
		}
		if cur.Drain && n.Status == atollv1.NodeStatus_NODE_READY {
			n.Status = atollv1.NodeStatus_NODE_DRAINING
			n.StatusMessage = cur.StatusMessage // drain progress
		}
	} else {
		n.CreateIndex, n.RegisteredAt = a.index, a.ts()
	}
	n.ModifyIndex = a.index
	if err := a.tx.Insert(state.TableNodes, n); err != nil {
		return nil, err
	}
	return n, a.event("node.registered", "node", n.Id, "", "", nil)
}

func (a *applier) applySetNodeStatus(c *atollv1.SetNodeStatusCmd) (*atollv1.Node, error) {
	cur := a.tx.Node(c.NodeId)
	if cur == nil {
		return nil, apierr.NotFound("node", c.NodeId)
	}
	n := proto.Clone(cur).(*atollv1.Node)
	switch c.Drain {
	case 1:
		n.Drain = true
	case 2:
		n.Drain = false
	}
	if c.Status != atollv1.NodeStatus_NODE_STATUS_UNSPECIFIED {
		n.Status = c.Status
	}
	if n.Status != atollv1.NodeStatus_NODE_DOWN {
		n.Status = atollv1.NodeStatus_NODE_READY
		if n.Drain {
			n.Status = atollv1.NodeStatus_NODE_DRAINING
		}
	}
	n.StatusMessage, n.ModifyIndex = c.Message, a.index
	switch {
	case n.Drain && !cur.Drain:
		n.StatusMessage = drainProgress(0, len(a.tx.NodeInstances(n.Id)))
	case n.Drain && c.Message == "" && n.Status == atollv1.NodeStatus_NODE_DRAINING:
		n.StatusMessage = cur.StatusMessage
	}
	if proto.Equal(n, cur) {
		return cur, nil
	}
	if err := a.tx.Insert(state.TableNodes, n); err != nil {
		return nil, err
	}
	if n.Status == atollv1.NodeStatus_NODE_DOWN && cur.Status != atollv1.NodeStatus_NODE_DOWN {
		// Its instances are lost: the scheduler places them elsewhere.
		envs := map[string]bool{}
		for _, in := range a.tx.NodeInstances(n.Id) {
			cp := proto.Clone(in).(*atollv1.Instance)
			cp.State, cp.LastError, cp.ModifyIndex, cp.UpdatedAt = atollv1.InstanceState_INSTANCE_LOST, "node "+n.Name+" is down", a.index, a.ts()
			if err := a.tx.Insert(state.TableInstances, cp); err != nil {
				return nil, err
			}
			envs[in.EnvId] = true
		}
		for env := range envs {
			if err := a.refreshEnvStatus(env); err != nil {
				return nil, err
			}
		}
	}
	return n, a.event("node.status_changed", "node", n.Id, "", "", nil)
}

// applyApplyPlan commits one scheduler decision, or refuses it whole when
// the state moved under it (optimistic concurrency).
func (a *applier) applyApplyPlan(c *atollv1.ApplyPlanCmd) error {
	for appID, v := range c.AppVersions {
		if app := a.tx.App(appID); app == nil || app.Version != v {
			return apierr.Aborted("stale plan: app %s changed since the plan was computed", appID)
		}
	}
	for nodeID, idx := range c.NodeIndexes {
		if n := a.tx.Node(nodeID); n == nil || n.ModifyIndex != idx {
			return apierr.Aborted("stale plan: node %s changed since the plan was computed", nodeID)
		}
	}
	stopping := map[string]bool{}
	for _, id := range c.Stop {
		stopping[id] = true
	}
	// Capacity re-check per node: what stays + what is placed <= allocatable.
	add := map[string]quota.Vec{}
	checkedNode, apps := map[string]bool{}, map[string]*atollv1.App{}
	for _, in := range c.Place {
		if !checkedNode[in.NodeId] {
			n := a.tx.Node(in.NodeId)
			if n == nil || n.Status != atollv1.NodeStatus_NODE_READY {
				return apierr.Aborted("stale plan: node %s is not ready", in.NodeId)
			}
			checkedNode[in.NodeId] = true
		}
		app := apps[in.AppId]
		if app == nil {
			if app = a.tx.App(in.AppId); app == nil || app.IsDeleted {
				return apierr.Aborted("stale plan: app %s is gone", in.AppId)
			}
			apps[in.AppId] = app
		}
		if in.AppVersion != SpecVersion(app) {
			return apierr.Aborted("stale plan: instance %s is for version %d of app %s, whose spec is at version %d", in.Id, in.AppVersion, in.AppId, SpecVersion(app))
		}
		if a.tx.Instance(in.Id) != nil {
			return apierr.Aborted("stale plan: instance %s exists", in.Id)
		}
		add[in.NodeId] = add[in.NodeId].Add(quota.Of(in.Resources))
	}
	for nodeID, extra := range add {
		n := a.tx.Node(nodeID)
		var kept quota.Vec
		for _, in := range a.tx.NodeInstances(nodeID) {
			if !stopping[in.Id] {
				kept = kept.Add(quota.Of(in.Resources))
			}
		}
		if sf, ok := quota.Fits(kept.Add(extra), quota.Of(n.Allocatable)); !ok {
			return apierr.Aborted("stale plan: node %s has no room for %s (%d > %d)", nodeID, sf.Dimension, sf.Requested, sf.Available)
		}
	}
	// Volumes live on one node: an instance must be placed where its
	// volumes' data is; the first placement pins an unplaced volume.
	pin := map[string]string{}
	for _, in := range c.Place {
		app := a.tx.App(in.AppId)
		for _, m := range app.GetVolumeMounts() {
			vol := a.tx.Volume(m.VolIdRef)
			if vol == nil {
				continue
			}
			node := vol.NodeId
			if node == "" {
				node = pin[vol.Id]
			}
			switch {
			case node == "":
				pin[vol.Id] = in.NodeId
			case node != in.NodeId:
				return apierr.Aborted("stale plan: volume %s lives on node %s, not %s", vol.Id, node, in.NodeId)
			}
		}
	}
	// Checks passed: write.
	envs := map[string]bool{}
	for volID, node := range pin {
		vol := proto.Clone(a.tx.Volume(volID)).(*atollv1.Volume)
		vol.NodeId, vol.ModifyIndex = node, a.index
		if err := a.tx.Insert(state.TableVolumes, vol); err != nil {
			return err
		}
	}
	drained := map[string]bool{}
	for _, id := range c.Stop {
		if in := a.tx.Instance(id); in != nil {
			if err := a.dropInstance(in); err != nil {
				return err
			}
			envs[in.EnvId] = true
			drained[in.NodeId] = true
		}
	}
	for nodeID := range drained {
		if err := a.noteDrainProgress(nodeID); err != nil {
			return err
		}
	}
	for _, in := range c.Place {
		in.CreateIndex, in.ModifyIndex, in.CreatedAt, in.UpdatedAt = a.index, a.index, a.ts(), a.ts()
		in.State, in.DesiredRunning = atollv1.InstanceState_INSTANCE_ASSIGNED, true
		if err := a.tx.Insert(state.TableInstances, in); err != nil {
			return err
		}
		envs[in.EnvId] = true
	}
	for appID, why := range c.Unplaced {
		app := a.tx.App(appID)
		if app == nil {
			continue
		}
		if app.Status.GetMessage() != why {
			cp := proto.Clone(app).(*atollv1.App)
			if cp.Status == nil {
				cp.Status = &atollv1.AppStatus{}
			}
			cp.Status.Message = why
			if err := a.tx.Insert(state.TableApps, cp); err != nil {
				return err
			}
			if err := a.event("app.unschedulable", "app", app.Id, app.OrgId, "", nil); err != nil {
				return err
			}
		}
		envs[app.EnvIdRef] = true
	}
	for appID := range c.AppVersions {
		if _, un := c.Unplaced[appID]; un {
			continue
		}
		if app := a.tx.App(appID); app != nil && app.Status.GetMessage() != "" {
			cp := proto.Clone(app).(*atollv1.App)
			cp.Status.Message = ""
			if err := a.tx.Insert(state.TableApps, cp); err != nil {
				return err
			}
		}
	}
	for env := range envs {
		if err := a.setEnvUsage(env); err != nil {
			return err
		}
	}
	return nil
}

// drainProgress is a draining node's status message.
func drainProgress(moved, total int) string {
	if moved >= total {
		return fmt.Sprintf("drained: %d of %d instances moved", moved, total)
	}
	return fmt.Sprintf("draining: %d of %d instances moved", moved, total)
}

// noteDrainProgress updates a draining node's message after some of its
// instances stopped. The total is the count when the drain began (kept in
// the message), raised if instances were added since.
func (a *applier) noteDrainProgress(nodeID string) error {
	cur := a.tx.Node(nodeID)
	if cur == nil || cur.Status != atollv1.NodeStatus_NODE_DRAINING {
		return nil
	}
	left := len(a.tx.NodeInstances(nodeID))
	var moved, total int
	if _, err := fmt.Sscanf(strings.TrimPrefix(strings.TrimPrefix(cur.StatusMessage, "draining: "), "drained: "), "%d of %d", &moved, &total); err != nil {
		total = left
	}
	total = max(total, left)
	msg := drainProgress(total-left, total)
	if msg == cur.StatusMessage {
		return nil
	}
	n := proto.Clone(cur).(*atollv1.Node)
	n.StatusMessage, n.ModifyIndex = msg, a.index
	return a.tx.Insert(state.TableNodes, n)
}

// applyUpdateInstances records the states an agent reported.
func (a *applier) applyUpdateInstances(c *atollv1.UpdateInstancesCmd) error {
	envs := map[string]bool{}
	for _, st := range c.Instances {
		cur := a.tx.Instance(st.InstanceId)
		if cur == nil || cur.NodeId != c.NodeId {
			continue // removed meanwhile, or not this node's: ignore
		}
		in := proto.Clone(cur).(*atollv1.Instance)
		in.State, in.ContainerId, in.Restarts, in.LastError = st.State, st.ContainerId, st.Restarts, st.Error
		switch {
		case st.State != atollv1.InstanceState_INSTANCE_RUNNING:
			in.RunningSince = nil
		case cur.State != atollv1.InstanceState_INSTANCE_RUNNING || cur.RunningSince == nil || st.Restarts != cur.Restarts:
			in.RunningSince = a.ts() // (re)started: the healthy time counts from now
		}
		if st.StartedAt != nil {
			in.StartedAt = st.StartedAt
		}
		if st.Address != "" {
			in.Address = st.Address
		}
		// Health is the agent's word while RUNNING; anything else resets it
		// (a restarted container is checked again from scratch).
		in.Healthy, in.HealthMessage = false, ""
		if st.State == atollv1.InstanceState_INSTANCE_RUNNING {
			in.Healthy, in.HealthMessage = st.Healthy, st.HealthMessage
		}
		if proto.Equal(in, cur) {
			continue
		}
		in.ModifyIndex, in.UpdatedAt = a.index, a.ts()
		if err := a.tx.Insert(state.TableInstances, in); err != nil {
			return err
		}
		envs[in.EnvId] = true
	}
	for env := range envs {
		if err := a.refreshEnvStatus(env); err != nil {
			return fmt.Errorf("refresh environment %s: %w", env, err)
		}
	}
	return nil
}
