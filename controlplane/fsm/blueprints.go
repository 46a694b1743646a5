package fsm

import (
	"fmt"
	"strings"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/quota"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func (a *applier) applyCreateBlueprint(c *atollv1.CreateBlueprintCmd) (*atollv1.Blueprint, error) {
	bp := c.GetBlueprint()
	if bp.GetId() == "" || a.tx.Blueprint(bp.Id) != nil {
		return nil, apierr.AlreadyExists("blueprint", "id", bp.GetId(), "the cluster")
	}
	if bp.OrgId != a.cmd.OrgId || a.tx.Organization(bp.OrgId) == nil {
		return nil, apierr.NotFound("organization", bp.OrgId)
	}
	for _, o := range a.tx.Blueprints(bp.OrgId) {
		if o.Name == bp.Name {
			return nil, apierr.AlreadyExists("blueprint", "name", bp.Name, "the organization")
		}
	}
	bp.CreatedBy, bp.CreatedAt = a.cmd.Actor, a.ts()
	bp.CreateIndex, bp.ModifyIndex = a.index, a.index
	if err := a.tx.Insert(state.TableBlueprints, bp); err != nil {
		return nil, err
	}
	return bp, a.event("blueprint.created", "blueprint", bp.Id, bp.OrgId, "", nil)
}

// applyDeleteBlueprint removes a blueprint. Environments made from it are
// not touched: a blueprint is a template, its objects were copied.
func (a *applier) applyDeleteBlueprint(c *atollv1.DeleteBlueprintCmd) error {
	bp := a.tx.Blueprint(c.BlueprintId)
	if bp == nil || bp.OrgId != a.cmd.OrgId {
		return apierr.NotFound("blueprint", c.BlueprintId)
	}
	if err := a.tx.Delete(state.TableBlueprints, bp); err != nil {
		return err
	}
	return a.event("blueprint.deleted", "blueprint", bp.Id, bp.OrgId, "", nil)
}

func hasCarried(c *atollv1.CreateEnvironmentCmd) bool {
	return len(c.Volumes)+len(c.VariableSets)+len(c.Files)+len(c.Apps) > 0
}

// checkCarried checks the objects created with an environment (from a
// blueprint) before anything is written: fresh ids, names unique within the
// new environment, mounts among the carried objects, and that the apps and
// volumes fit the environment's quota.
func (a *applier) checkCarried(c *atollv1.CreateEnvironmentCmd, env *atollv1.Environment) error {
	if !hasCarried(c) {
		return nil
	}
	type obj struct {
		kind, id, envID, name string
		exists                bool
	}
	var objs []obj
	vols, vsets, files := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var demand quota.Vec
	for _, v := range c.Volumes {
		objs = append(objs, obj{"volume", v.GetId(), v.GetEnvId(), v.GetName(), a.tx.Volume(v.GetId()) != nil})
		vols[v.GetId()] = true
		demand.Storage += int64(v.GetSizeMb())
	}
	for _, v := range c.VariableSets {
		objs = append(objs, obj{"variable set", v.GetId(), v.GetEnvId(), v.GetName(), a.tx.VariableSet(v.GetId()) != nil})
		vsets[v.GetId()] = true
	}
	for _, f := range c.Files {
		objs = append(objs, obj{"file", f.GetId(), f.GetEnvId(), f.GetName(), a.tx.File(f.GetId()) != nil})
		files[f.GetId()] = true
		if len(f.GetContent()) > 1<<20 {
			return apierr.InvalidField("file.content", "at most 1 MiB (got %d bytes)", len(f.GetContent()))
		}
	}
	for _, app := range c.Apps {
		objs = append(objs, obj{"app", app.GetId(), app.GetEnvIdRef(), app.GetName(), a.tx.App(app.GetId()) != nil})
		demand = demand.Add(AppDemand(app))
	}
	ids, names := map[string]bool{}, map[string]bool{}
	for _, o := range objs {
		if o.id == "" || o.exists || ids[o.id] {
			return apierr.AlreadyExists(o.kind, "id", o.id, "the cluster")
		}
		ids[o.id] = true
		if o.envID != env.Id {
			return apierr.InvalidField("environment", "%s %s belongs to environment %q, not %s", o.kind, o.id, o.envID, env.Id)
		}
		if names[o.kind+"/"+o.name] {
			return apierr.AlreadyExists(o.kind, "name", o.name, "environment "+env.Id)
		}
		names[o.kind+"/"+o.name] = true
	}
	for _, app := range c.Apps {
		for i, m := range app.VolumeMounts {
			if !vols[m.VolIdRef] {
				return apierr.InvalidField(fmt.Sprintf("apps[%s].volumeMounts[%d]", app.Name, i), "volume %q not found in this environment", m.VolIdRef)
			}
		}
		for i, m := range app.VariableSetMounts {
			if !vsets[m.VarSetIdRef] {
				return apierr.InvalidField(fmt.Sprintf("apps[%s].variableSetMounts[%d]", app.Name, i), "variable set %q not found in this environment", m.VarSetIdRef)
			}
		}
		for i, m := range app.FileMounts {
			if !files[m.FileIdRef] {
				return apierr.InvalidField(fmt.Sprintf("apps[%s].fileMounts[%d]", app.Name, i), "file %q not found in this environment", m.FileIdRef)
			}
		}
	}
	return a.checkEnvRoom(env, quota.Vec{}, demand)
}

// writeCarried inserts the objects created with an environment, with their
// events, and updates the environment's usage (and so its status: the apps
// make it PROVISIONING until they run).
func (a *applier) writeCarried(c *atollv1.CreateEnvironmentCmd, env *atollv1.Environment, requested string) error {
	for _, v := range c.Volumes {
		v.OrgId, v.CreateIndex, v.ModifyIndex, v.CreatedAt, v.CreatedBy = env.OrgId, a.index, a.index, a.ts(), a.cmd.Actor
		if err := a.tx.Insert(state.TableVolumes, v); err != nil {
			return err
		}
		if err := a.event("volume.created", "volume", v.Id, v.OrgId, env.ProjectId, nil); err != nil {
			return err
		}
	}
	for _, v := range c.VariableSets {
		v.Version = 1
		v.OrgId, v.CreateIndex, v.ModifyIndex, v.CreatedAt, v.CreatedBy = env.OrgId, a.index, a.index, a.ts(), a.cmd.Actor
		if err := a.tx.Insert(state.TableVariableSets, v); err != nil {
			return err
		}
		if err := a.event("variable_set.created", "variable_set", v.Id, v.OrgId, env.ProjectId, nil); err != nil {
			return err
		}
	}
	for _, f := range c.Files {
		f.Version = 1
		f.OrgId, f.CreateIndex, f.ModifyIndex, f.CreatedAt, f.CreatedBy = env.OrgId, a.index, a.index, a.ts(), a.cmd.Actor
		if err := a.tx.Insert(state.TableFiles, f); err != nil {
			return err
		}
		if err := a.event("file.created", "file", f.Id, f.OrgId, env.ProjectId, nil); err != nil {
			return err
		}
	}
	for _, app := range c.Apps {
		if env.Slug != requested {
			rehost(app, requested, env.Slug)
		}
		app.OrgId, app.CompanyIdRef = env.OrgId, env.OrgId
		app.Version, app.SpecVersion, app.CreateIndex, app.ModifyIndex = 1, 1, a.index, a.index
		app.CreatedAt, app.UpdatedAt = a.ts(), a.ts()
		app.CreatedBy, app.ModifiedBy = a.cmd.Actor, a.cmd.Actor
		a.stampMounts(app)
		if err := a.tx.Insert(state.TableApps, app); err != nil {
			return err
		}
		if err := a.event("app.created", "app", app.Id, app.OrgId, env.ProjectId, nil); err != nil {
			return err
		}
	}
	return a.setEnvUsage(env.Id)
}

// rehost moves an app's hostnames (<app>-<slug>.<domain>) to the slug the
// environment got when the requested one was taken.
func rehost(app *atollv1.App, from, to string) {
	old, repl := app.Name+"-"+from+".", app.Name+"-"+to+"."
	fix := func(h string) string {
		if strings.HasPrefix(h, old) {
			return repl + h[len(old):]
		}
		return h
	}
	for _, p := range app.Ports {
		p.Hostname = fix(p.Hostname)
	}
	if pe := app.PublicEndpoint; pe != nil {
		pe.Hostname = fix(pe.Hostname)
		pe.Url = strings.Replace(pe.Url, "//"+old, "//"+repl, 1)
	}
}
