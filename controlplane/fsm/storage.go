package fsm

import (
	"fmt"
	"sort"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/quota"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func (a *applier) applyCreateVolume(c *atollv1.CreateVolumeCmd) (*atollv1.Volume, error) {
	v := c.GetVolume()
	env, err := a.liveEnv(v.GetEnvId())
	if err != nil {
		return nil, err
	}
	for _, o := range a.tx.Volumes(env.Id) {
		if o.Name == v.Name {
			return nil, apierr.AlreadyExists("volume", "name", v.Name, "environment "+env.Id)
		}
	}
	if err := a.checkEnvRoom(env, EnvDemand(a.tx, env.Id), quota.Vec{Storage: int64(v.SizeMb)}); err != nil {
		return nil, err
	}
	v.OrgId, v.CreateIndex, v.ModifyIndex, v.CreatedAt, v.CreatedBy = env.OrgId, a.index, a.index, a.ts(), a.cmd.Actor
	if err := a.tx.Insert(state.TableVolumes, v); err != nil {
		return nil, err
	}
	return v, a.setEnvUsage(env.Id)
}

// mountedBy names the live apps of env that use an object, in their
// current spec or in the kept spec of an older version that instances still
// run (a rollout in progress or halted): those instances need it as well.
func mountedBy(tx *state.Txn, envID string, uses func(*atollv1.App) bool) []string {
	var names []string
	for _, app := range tx.Apps(envID) {
		if app.IsDeleted {
			continue
		}
		if uses(app) {
			names = append(names, app.Name)
			continue
		}
		for _, s := range tx.AppSpecs(app.Id) {
			if uses(s.App) {
				names = append(names, fmt.Sprintf("%s (version %d, still running during a rollout)", app.Name, s.Version))
				break
			}
		}
	}
	sort.Strings(names)
	return names
}

// VolumeUsers, VariableSetUsers and FileUsers name the apps mounting an object.
func VolumeUsers(tx *state.Txn, v *atollv1.Volume) []string {
	return mountedBy(tx, v.EnvId, func(app *atollv1.App) bool {
		for _, m := range app.VolumeMounts {
			if m.VolIdRef == v.Id {
				return true
			}
		}
		return false
	})
}

func VariableSetUsers(tx *state.Txn, v *atollv1.VariableSet) []string {
	return mountedBy(tx, v.EnvId, func(app *atollv1.App) bool {
		for _, m := range app.VariableSetMounts {
			if m.VarSetIdRef == v.Id {
				return true
			}
		}
		return false
	})
}

func FileUsers(tx *state.Txn, f *atollv1.File) []string {
	return mountedBy(tx, f.EnvId, func(app *atollv1.App) bool {
		for _, m := range app.FileMounts {
			if m.FileIdRef == f.Id {
				return true
			}
		}
		return false
	})
}

func inUse(kind, name string, users []string) error {
	return apierr.FailedPrecondition("%s %q is mounted by app(s) %v: remove the mounts or delete the apps first", kind, name, users)
}

func (a *applier) applyDeleteVolume(c *atollv1.DeleteVolumeCmd) error {
	v := a.tx.Volume(c.VolumeId)
	if v == nil || v.OrgId != a.cmd.OrgId {
		return apierr.NotFound("volume", c.VolumeId)
	}
	if users := VolumeUsers(a.tx, v); len(users) > 0 {
		return inUse("volume", v.Name, users)
	}
	if err := a.tx.Delete(state.TableVolumes, v); err != nil {
		return err
	}
	return a.setEnvUsage(v.EnvId)
}

func (a *applier) applyCreateVariableSet(c *atollv1.CreateVariableSetCmd) (*atollv1.VariableSet, error) {
	v := c.GetVariableSet()
	env, err := a.liveEnv(v.GetEnvId())
	if err != nil {
		return nil, err
	}
	for _, o := range a.tx.VariableSets(env.Id) {
		if o.Name == v.Name {
			return nil, apierr.AlreadyExists("variable set", "name", v.Name, "environment "+env.Id)
		}
	}
	v.OrgId, v.CreateIndex, v.ModifyIndex, v.CreatedAt, v.CreatedBy = env.OrgId, a.index, a.index, a.ts(), a.cmd.Actor
	v.Version, v.RollingApps = 1, nil
	if err := a.tx.Insert(state.TableVariableSets, v); err != nil {
		return nil, err
	}
	return v, a.setEnvUsage(env.Id)
}

func (a *applier) applyDeleteVariableSet(c *atollv1.DeleteVariableSetCmd) error {
	v := a.tx.VariableSet(c.VariableSetId)
	if v == nil || v.OrgId != a.cmd.OrgId {
		return apierr.NotFound("variable set", c.VariableSetId)
	}
	if users := VariableSetUsers(a.tx, v); len(users) > 0 {
		return inUse("variable set", v.Name, users)
	}
	if err := a.tx.Delete(state.TableVariableSets, v); err != nil {
		return err
	}
	a.touchEnv(v.EnvId)
	return a.setEnvUsage(v.EnvId)
}

func (a *applier) applyCreateFile(c *atollv1.CreateFileCmd) (*atollv1.File, error) {
	f := c.GetFile()
	env, err := a.liveEnv(f.GetEnvId())
	if err != nil {
		return nil, err
	}
	for _, o := range a.tx.Files(env.Id) {
		if o.Name == f.Name {
			return nil, apierr.AlreadyExists("file", "name", f.Name, "environment "+env.Id)
		}
	}
	if len(f.Content) > 1<<20 {
		return nil, apierr.InvalidField("file.content", "at most 1 MiB (got %d bytes)", len(f.Content))
	}
	f.OrgId, f.CreateIndex, f.ModifyIndex, f.CreatedAt, f.CreatedBy = env.OrgId, a.index, a.index, a.ts(), a.cmd.Actor
	f.Version, f.RollingApps = 1, nil
	if err := a.tx.Insert(state.TableFiles, f); err != nil {
		return nil, err
	}
	return f, a.setEnvUsage(env.Id)
}

func (a *applier) applyDeleteFile(c *atollv1.DeleteFileCmd) error {
	f := a.tx.File(c.FileId)
	if f == nil || f.OrgId != a.cmd.OrgId {
		return apierr.NotFound("file", c.FileId)
	}
	if users := FileUsers(a.tx, f); len(users) > 0 {
		return inUse("file", f.Name, users)
	}
	if err := a.tx.Delete(state.TableFiles, f); err != nil {
		return fmt.Errorf("delete file: %w", err)
	}
	a.touchEnv(f.EnvId)
	return a.setEnvUsage(f.EnvId)
}
