package fsm

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/quota"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// AppActive reports whether an app should run (isActive defaults to true).
func AppActive(a *atollv1.App) bool { return !a.IsDeleted && (a.IsActive == nil || *a.IsActive) }

// AppDemand is what an app takes from its environment's quota: requests x
// replicas when active (cpu, memory, filesystem storage).
func AppDemand(a *atollv1.App) quota.Vec {
	if !AppActive(a) {
		return quota.Vec{}
	}
	return quota.Of(a.Requests).Scale(int64(max(a.Replicas, 0)))
}

// EnvDemand sums what an environment's apps and volumes take from its quota.
func EnvDemand(tx *state.Txn, envID string) quota.Vec {
	var v quota.Vec
	for _, a := range tx.Apps(envID) {
		v = v.Add(AppDemand(a))
	}
	for _, vol := range tx.Volumes(envID) {
		v.Storage += int64(vol.SizeMb)
	}
	return v
}

// checkEnvRoom refuses mine when it does not fit the environment's quota
// next to what everything else (others) already takes.
func (a *applier) checkEnvRoom(env *atollv1.Environment, others, mine quota.Vec) error {
	avail := quota.Available(quota.Of(env.ResourceQuota), others)
	if sf, ok := quota.Fits(mine, avail); !ok {
		return apierr.QuotaExceeded("environment", sf.Dimension, quota.Unit(sf.Dimension), sf.Requested, sf.Available)
	}
	return nil
}

// othersDemand is the environment's demand without one app.
func othersDemand(tx *state.Txn, envID, appID string) quota.Vec {
	v := EnvDemand(tx, envID)
	if cur := tx.App(appID); cur != nil {
		v = v.Sub(AppDemand(cur))
	}
	return v
}

// setEnvUsage stores the environment's allocated usage and object counts.
func (a *applier) setEnvUsage(envID string) error {
	cur := a.tx.Environment(envID)
	if cur == nil {
		return nil
	}
	env := proto.Clone(cur).(*atollv1.Environment)
	env.ResourceUsage = EnvDemand(a.tx, envID).Proto()
	res := &atollv1.EnvironmentResources{}
	for _, app := range a.tx.Apps(envID) {
		if !app.IsDeleted {
			res.Apps++
		}
	}
	for _, in := range a.tx.EnvInstances(envID) {
		if in.DesiredRunning {
			res.Instances++
		}
	}
	res.Volumes = int32(len(a.tx.Volumes(envID)))
	res.VariableSets = int32(len(a.tx.VariableSets(envID)))
	res.Files = int32(len(a.tx.Files(envID)))
	env.Resources = res
	env.ModifyIndex = a.index
	if err := a.tx.Insert(state.TableEnvironments, env); err != nil {
		return err
	}
	return a.refreshEnvStatus(envID)
}

// refreshEnvStatus derives a running environment's status from its instances:
// PROVISIONING while they start, RUNNING when every active app runs all its
// replicas, ERROR naming the failing app. Stopped and hibernating
// environments move from STOPPING to STOPPED once nothing runs.
func (a *applier) refreshEnvStatus(envID string) error {
	cur := a.tx.Environment(envID)
	if cur == nil || cur.IsDeleted {
		return nil
	}
	status, msg := cur.Status, ""
	switch cur.Status {
	case atollv1.EnvironmentStatus_STOPPING:
		running := 0
		for _, in := range a.tx.EnvInstances(envID) {
			if in.State == atollv1.InstanceState_INSTANCE_RUNNING || in.State == atollv1.InstanceState_INSTANCE_STARTING {
				running++
			}
		}
		if running == 0 {
			status = atollv1.EnvironmentStatus_STOPPED
		} else {
			msg = fmt.Sprintf("%d instance(s) still stopping", running)
		}
	case atollv1.EnvironmentStatus_STOPPED, atollv1.EnvironmentStatus_HIBERNATING, atollv1.EnvironmentStatus_SLEEPING, atollv1.EnvironmentStatus_TERMINATING:
		return nil
	default:
		status, msg = a.deriveRunStatus(envID)
	}
	if status == cur.Status && msg == cur.StatusMessage {
		return nil
	}
	env := proto.Clone(cur).(*atollv1.Environment)
	env.Status, env.StatusMessage, env.ModifyIndex = status, msg, a.index
	if status == atollv1.EnvironmentStatus_RUNNING && cur.Status != atollv1.EnvironmentStatus_RUNNING {
		env.StartedAt = a.ts()
	}
	if err := a.tx.Insert(state.TableEnvironments, env); err != nil {
		return err
	}
	return a.event("environment.status_changed", "environment", env.Id, env.OrgId, env.ProjectId, env)
}

// While an app rolls out a new spec, its RUNNING instances of either
// version count as replicas (they all serve): a halted rollout does not put
// the environment in ERROR while the previous version runs, it is named in
// the status message.
func (a *applier) deriveRunStatus(envID string) (atollv1.EnvironmentStatus, string) {
	var failing, pending, halted []string
	for _, app := range a.tx.Apps(envID) {
		if !AppActive(app) {
			continue
		}
		running := 0
		var errMsg string
		insts := a.tx.AppInstances(app.Id)
		for _, in := range insts {
			if in.DesiredRunning && Unhealthy(a.tx, app, in) {
				// Serving nothing (out of the routes), not failed: noted
				// like a halted rollout, the environment stays RUNNING.
				halted = append(halted, fmt.Sprintf("app %s: instance %s unhealthy: %s", app.Name, in.Id, in.HealthMessage))
			}
			switch in.State {
			case atollv1.InstanceState_INSTANCE_RUNNING:
				running++
			case atollv1.InstanceState_INSTANCE_ERROR, atollv1.InstanceState_INSTANCE_FAILED:
				if in.LastError != "" {
					errMsg = in.LastError
				} else {
					errMsg = "instance failed"
				}
			}
		}
		r := Rollout(app, insts)
		switch {
		case running >= int(app.Replicas) && r != nil && r.State == RolloutFailed:
			halted = append(halted, fmt.Sprintf("app %s: %s", app.Name, r.Message))
		case running >= int(app.Replicas):
		case errMsg != "":
			failing = append(failing, fmt.Sprintf("app %s: %s", app.Name, errMsg))
		default:
			pending = append(pending, app.Name)
		}
	}
	sort.Strings(failing)
	sort.Strings(halted)
	switch {
	case len(failing) > 0:
		return atollv1.EnvironmentStatus_ERROR, strings.Join(append(failing, halted...), "; ")
	case len(pending) > 0:
		return atollv1.EnvironmentStatus_PROVISIONING, "starting: " + strings.Join(pending, ", ")
	}
	return atollv1.EnvironmentStatus_RUNNING, strings.Join(halted, "; ")
}

// checkMounts verifies that every volume, variable set and file the app
// mounts exists in its environment.
func (a *applier) checkMounts(app *atollv1.App) error {
	for i, m := range app.VolumeMounts {
		if v := a.tx.Volume(m.VolIdRef); v == nil || v.EnvId != app.EnvIdRef {
			return apierr.InvalidField(fmt.Sprintf("volumeMounts[%d]", i), "volume %q not found in this environment", m.VolIdRef)
		}
	}
	for i, m := range app.VariableSetMounts {
		if v := a.tx.VariableSet(m.VarSetIdRef); v == nil || v.EnvId != app.EnvIdRef {
			return apierr.InvalidField(fmt.Sprintf("variableSetMounts[%d]", i), "variable set %q not found in this environment", m.VarSetIdRef)
		}
	}
	for i, m := range app.FileMounts {
		if f := a.tx.File(m.FileIdRef); f == nil || f.EnvId != app.EnvIdRef {
			return apierr.InvalidField(fmt.Sprintf("fileMounts[%d]", i), "file %q not found in this environment", m.FileIdRef)
		}
	}
	return nil
}

func (a *applier) applyCreateApp(c *atollv1.CreateAppCmd) (*atollv1.App, error) {
	app := c.GetApp()
	env, err := a.liveEnv(app.GetEnvIdRef())
	if err != nil {
		return nil, err
	}
	if app.Id == "" || a.tx.App(app.Id) != nil {
		return nil, apierr.AlreadyExists("app", "id", app.Id, "the cluster")
	}
	if a.tx.LiveAppByName(env.Id, app.Name) != nil {
		return nil, apierr.AlreadyExists("app", "name", app.Name, "environment "+env.Id)
	}
	if err := a.checkMounts(app); err != nil {
		return nil, err
	}
	if err := a.checkEnvRoom(env, EnvDemand(a.tx, env.Id), AppDemand(app)); err != nil {
		return nil, err
	}
	a.stampMounts(app)
	app.OrgId, app.CompanyIdRef = env.OrgId, env.OrgId
	app.Version, app.SpecVersion, app.CreateIndex, app.ModifyIndex = 1, 1, a.index, a.index
	app.CreatedAt, app.UpdatedAt = a.ts(), a.ts()
	app.CreatedBy, app.ModifiedBy = a.cmd.Actor, a.cmd.Actor
	if err := a.tx.Insert(state.TableApps, app); err != nil {
		return nil, err
	}
	if err := a.event("app.created", "app", app.Id, app.OrgId, env.ProjectId, nil); err != nil {
		return nil, err
	}
	return app, a.setEnvUsage(env.Id)
}

func (a *applier) ownApp(id string) (*atollv1.App, *atollv1.Environment, error) {
	app := a.tx.App(id)
	if app == nil || app.OrgId != a.cmd.OrgId || app.IsDeleted {
		return nil, nil, apierr.NotFound("app", id)
	}
	env, err := a.liveEnv(app.EnvIdRef)
	return app, env, err
}

func (a *applier) applyUpdateApp(c *atollv1.UpdateAppCmd) (*atollv1.App, error) {
	next := c.GetApp()
	cur, env, err := a.ownApp(next.GetId())
	if err != nil {
		return nil, err
	}
	if c.ExpectedVersion != 0 && c.ExpectedVersion != cur.Version {
		return nil, apierr.Aborted("app %s is at version %d, not the expected %d: re-read it and retry", cur.Id, cur.Version, c.ExpectedVersion)
	}
	if next.Name != cur.Name {
		if o := a.tx.LiveAppByName(env.Id, next.Name); o != nil {
			return nil, apierr.AlreadyExists("app", "name", next.Name, "environment "+env.Id)
		}
	}
	if err := a.checkMounts(next); err != nil {
		return nil, err
	}
	if err := a.checkEnvRoom(env, othersDemand(a.tx, env.Id, cur.Id), AppDemand(next)); err != nil {
		return nil, err
	}
	// Immutable and bookkeeping fields come from the current version.
	next.EnvIdRef, next.OrgId, next.CompanyIdRef = cur.EnvIdRef, cur.OrgId, cur.CompanyIdRef
	next.CreateIndex, next.CreatedAt, next.CreatedBy = cur.CreateIndex, cur.CreatedAt, cur.CreatedBy
	if err := a.saveAppVersion(cur, next, env.ProjectId); err != nil {
		return nil, err
	}
	if err := a.renameDeployment(env.Id, cur.Name, next.Name); err != nil { // releases.go
		return nil, err
	}
	return next, a.setEnvUsage(env.Id)
}

func (a *applier) applyDeleteApp(c *atollv1.DeleteAppCmd) error {
	cur, env, err := a.ownApp(c.AppId)
	if err != nil {
		return err
	}
	app := proto.Clone(cur).(*atollv1.App)
	app.IsDeleted, app.ModifyIndex, app.UpdatedAt, app.ModifiedBy = true, a.index, a.ts(), a.cmd.Actor
	app.Version++
	if err := a.tx.Insert(state.TableApps, app); err != nil {
		return err
	}
	// Its instances go: their containers are removed by the agents.
	for _, in := range a.tx.AppInstances(app.Id) {
		if err := a.dropInstance(in); err != nil {
			return err
		}
	}
	if err := a.event("app.deleted", "app", app.Id, app.OrgId, env.ProjectId, nil); err != nil {
		return err
	}
	if err := a.forgetDeployment(env.Id, app.Name); err != nil { // releases.go
		return err
	}
	return a.setEnvUsage(env.Id)
}

// stopEnvInstances makes an environment's instances stop (keep: containers
// and allocations stay) or go entirely (release).
func (a *applier) stopEnvInstances(envID string, release bool) (running int, err error) {
	for _, cur := range a.tx.EnvInstances(envID) {
		if release {
			if err := a.dropInstance(cur); err != nil {
				return 0, err
			}
			continue
		}
		if cur.State == atollv1.InstanceState_INSTANCE_RUNNING || cur.State == atollv1.InstanceState_INSTANCE_STARTING {
			running++
		}
		if !cur.DesiredRunning {
			continue
		}
		in := proto.Clone(cur).(*atollv1.Instance)
		in.DesiredRunning, in.ModifyIndex, in.UpdatedAt = false, a.index, a.ts()
		if err := a.tx.Insert(state.TableInstances, in); err != nil {
			return 0, err
		}
	}
	return running, nil
}

// startEnvInstances lets an environment's kept instances run again.
func (a *applier) startEnvInstances(envID string) error {
	for _, cur := range a.tx.EnvInstances(envID) {
		if cur.DesiredRunning {
			continue
		}
		in := proto.Clone(cur).(*atollv1.Instance)
		in.DesiredRunning, in.ModifyIndex, in.UpdatedAt = true, a.index, a.ts()
		if err := a.tx.Insert(state.TableInstances, in); err != nil {
			return err
		}
	}
	return nil
}

// applyReconcileEnvironment recomputes an environment's usage, counts and
// status from its apps and instances.
func (a *applier) applyReconcileEnvironment(c *atollv1.ReconcileEnvironmentCmd) (*atollv1.Environment, error) {
	env, err := a.liveEnv(c.EnvironmentId)
	if err != nil {
		return nil, err
	}
	if err := a.setEnvUsage(env.Id); err != nil {
		return nil, err
	}
	return a.tx.Environment(env.Id), nil
}

// saveAppVersion stores next as the version after cur: bookkeeping, the
// current content of its variable sets and files, and its spec version. A
// new container spec rolls the instances (rollout.go); the spec the running
// ones were placed for is kept until the last of them stops.
func (a *applier) saveAppVersion(cur, next *atollv1.App, projectID string) error {
	next.Version, next.ModifyIndex, next.UpdatedAt, next.ModifiedBy = cur.Version+1, a.index, a.ts(), a.cmd.Actor
	a.stampMounts(next)
	next.SpecVersion = a.nextSpecVersion(cur, next)
	if next.SpecVersion != SpecVersion(cur) && len(a.tx.AppInstances(cur.Id)) > 0 {
		if err := a.keepSpec(cur); err != nil {
			return err
		}
	}
	if err := a.tx.Insert(state.TableApps, next); err != nil {
		return err
	}
	a.touchApp(next.Id)
	return a.event("app.updated", "app", next.Id, next.OrgId, projectID, nil)
}
