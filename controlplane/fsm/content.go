package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Versioned content: variable sets and files change in place, running
// instances never see it.
//
// A variable set (a file) has a version: 1 on create, +1 on every update
// that changes its variables (content). An app spec records the version of
// every set and file it mounts (VariableSetMount.var_set_version,
// FileMount.file_version), stamped with the current ones whenever the app is
// created or updated. An update of a set stamps the new version into every
// live app mounting it, which makes a new spec version of each (in the same
// command, apps in id order): those apps roll with the rollout machinery
// (rollout.go), and the kept spec of the old version still names the old
// content version. The old content is kept as a row (varset_versions,
// file_versions) while a kept spec mounts it and dropped with the last such
// spec; the dispatcher builds an instance's environment and files from the
// version its spec names.

// VarSetVersion is the version of a set's current variables (sets written
// before versions existed have none: 1).
func VarSetVersion(v *atollv1.VariableSet) int64 { return max(v.GetVersion(), 1) }

// FileVersion is the version of a file's current content (at least 1).
func FileVersion(f *atollv1.File) int64 { return max(f.GetVersion(), 1) }

// mountVersion is the content version a mount names (mounts written before
// versions existed name none: the first).
func mountVersion(v int64) int64 { return max(v, 1) }

// stampMounts records the current version of every variable set and file
// the app mounts.
func (a *applier) stampMounts(app *atollv1.App) {
	for _, m := range app.VariableSetMounts {
		if vs := a.tx.VariableSet(m.VarSetIdRef); vs != nil {
			m.VarSetVersion = VarSetVersion(vs)
		}
	}
	for _, m := range app.FileMounts {
		if f := a.tx.File(m.FileIdRef); f != nil {
			m.FileVersion = FileVersion(f)
		}
	}
}

// MountedVariableSet is the variable set as a mount of an app spec runs
// it: the current set, or the kept version the spec was built with (nil
// when the set is gone).
func MountedVariableSet(tx *state.Txn, m *atollv1.VariableSetMount) *atollv1.VariableSet {
	cur := tx.VariableSet(m.GetVarSetIdRef())
	if cur == nil {
		return nil
	}
	if v := mountVersion(m.GetVarSetVersion()); v != VarSetVersion(cur) {
		if old := tx.VariableSetVersion(cur.Id, v); old != nil {
			return old.VariableSet
		}
	}
	return cur
}

// MountedFile is the file as a mount of an app spec runs it (see
// MountedVariableSet).
func MountedFile(tx *state.Txn, m *atollv1.FileMount) *atollv1.File {
	cur := tx.File(m.GetFileIdRef())
	if cur == nil {
		return nil
	}
	if v := mountVersion(m.GetFileVersion()); v != FileVersion(cur) {
		if old := tx.FileVersion(cur.Id, v); old != nil {
			return old.File
		}
	}
	return cur
}

func mountsVarSet(id string) func(*atollv1.App) bool {
	return func(app *atollv1.App) bool {
		return slices.ContainsFunc(app.VariableSetMounts, func(m *atollv1.VariableSetMount) bool { return m.VarSetIdRef == id })
	}
}

func mountsFile(id string) func(*atollv1.App) bool {
	return func(app *atollv1.App) bool {
		return slices.ContainsFunc(app.FileMounts, func(m *atollv1.FileMount) bool { return m.FileIdRef == id })
	}
}

// rollMounting gives every live app of env that mounts the changed object
// a new version with the current content versions stamped in (a new spec
// version: its instances roll), in app id order. It returns the names of
// the active ones (those whose instances are replaced), sorted.
func (a *applier) rollMounting(env *atollv1.Environment, uses func(*atollv1.App) bool) ([]string, error) {
	var apps []*atollv1.App
	for _, app := range a.tx.Apps(env.Id) {
		if !app.IsDeleted && uses(app) {
			apps = append(apps, app)
		}
	}
	slices.SortFunc(apps, func(x, y *atollv1.App) int {
		if x.Id < y.Id {
			return -1
		}
		if x.Id > y.Id {
			return 1
		}
		return 0
	})
	var rolled []string
	for _, cur := range apps {
		next := proto.Clone(cur).(*atollv1.App)
		if err := a.saveAppVersion(cur, next, env.ProjectId); err != nil {
			return nil, err
		}
		if AppActive(next) {
			rolled = append(rolled, next.Name)
		}
	}
	slices.Sort(rolled)
	return rolled, nil
}

// touchApp marks an app whose kept specs (and so kept content versions)
// may have become unused by this command.
func (a *applier) touchApp(id string) {
	if a.prune == nil {
		a.prune = map[string]bool{}
	}
	a.prune[id] = true
}

// touchEnv marks an environment whose kept content versions may have
// become unused by this command.
func (a *applier) touchEnv(id string) {
	if a.pruneEnvs == nil {
		a.pruneEnvs = map[string]bool{}
	}
	a.pruneEnvs[id] = true
}

// pruneContent drops the kept variable set and file versions of an
// environment that no live app's spec and no kept spec mounts.
func (a *applier) pruneContent(envID string) error {
	used := map[string]bool{}
	mark := func(app *atollv1.App) {
		for _, m := range app.VariableSetMounts {
			used[state.ContentVersionID(m.VarSetIdRef, mountVersion(m.VarSetVersion))] = true
		}
		for _, m := range app.FileMounts {
			used[state.ContentVersionID(m.FileIdRef, mountVersion(m.FileVersion))] = true
		}
	}
	for _, app := range a.tx.Apps(envID) {
		if !app.IsDeleted {
			mark(app)
		}
	}
	for _, s := range a.tx.EnvAppSpecs(envID) {
		mark(s.App)
	}
	for _, v := range a.tx.EnvVariableSetVersions(envID) {
		if !used[v.Id] {
			if err := a.tx.Delete(state.TableVarSetVersions, v); err != nil {
				return err
			}
		}
	}
	for _, f := range a.tx.EnvFileVersions(envID) {
		if !used[f.Id] {
			if err := a.tx.Delete(state.TableFileVersions, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// pruneTouchedContent runs pruneContent for the environments the command
// touched (directly, or through an app whose specs it pruned), in id order.
func (a *applier) pruneTouchedContent() error {
	for id := range a.prune {
		if app := a.tx.App(id); app != nil {
			a.touchEnv(app.EnvIdRef)
		}
	}
	for _, env := range slices.Sorted(maps.Keys(a.pruneEnvs)) {
		if err := a.pruneContent(env); err != nil {
			return err
		}
	}
	return nil
}

func variablesEqual(x, y map[string]*atollv1.Variable) bool {
	return maps.EqualFunc(x, y, func(a, b *atollv1.Variable) bool { return proto.Equal(a, b) })
}

// MaxVariables is the most variables a variable set (or an environment's
// variables) may hold.
const MaxVariables = 256

// MaxFileBytes is the largest file content.
const MaxFileBytes = 1 << 20

func (a *applier) applyUpdateVariableSet(c *atollv1.UpdateVariableSetCmd) (*atollv1.VariableSet, error) {
	cur := a.tx.VariableSet(c.VariableSetId)
	if cur == nil || cur.OrgId != a.cmd.OrgId {
		return nil, apierr.NotFound("variable set", c.VariableSetId)
	}
	env, err := a.liveEnv(cur.EnvId)
	if err != nil {
		return nil, err
	}
	if c.ExpectedVersion != 0 && c.ExpectedVersion != VarSetVersion(cur) {
		return nil, apierr.Aborted("variable set %s is at version %d, not the expected %d: re-read it and retry", cur.Id, VarSetVersion(cur), c.ExpectedVersion)
	}
	vars := map[string]*atollv1.Variable{}
	if !c.Replace {
		for k, v := range cur.Variables {
			vars[k] = v
		}
		for i, k := range c.Remove {
			if _, ok := vars[k]; !ok {
				return nil, apierr.InvalidField(fmt.Sprintf("remove[%d]", i), "variable set %q has no variable %q", cur.Name, k)
			}
			delete(vars, k)
		}
	}
	for k, v := range c.Variables {
		vars[k] = &atollv1.Variable{Value: v.GetValue(), Secret: v.GetSecret()}
	}
	// Checked here too: two concurrent updates each within the limit on
	// the API's read could otherwise exceed it together.
	if len(vars) > MaxVariables {
		return nil, apierr.InvalidField("set", "at most %d variables (the set would have %d)", MaxVariables, len(vars))
	}
	if variablesEqual(vars, cur.Variables) {
		out := proto.Clone(cur).(*atollv1.VariableSet)
		out.Version = VarSetVersion(cur)
		return out, nil // nothing changes: same version, nothing rolls
	}
	old := proto.Clone(cur).(*atollv1.VariableSet)
	old.Version = VarSetVersion(cur)
	if err := a.tx.Insert(state.TableVarSetVersions, &atollv1.VariableSetVersion{
		Id: state.ContentVersionID(cur.Id, old.Version), VarSetId: cur.Id, EnvId: cur.EnvId, Version: old.Version,
		VariableSet: old, CreateIndex: a.index,
	}); err != nil {
		return nil, err
	}
	next := proto.Clone(cur).(*atollv1.VariableSet)
	next.Variables, next.Version, next.ModifyIndex = vars, old.Version+1, a.index
	if err := a.tx.Insert(state.TableVariableSets, next); err != nil {
		return nil, err
	}
	rolled, err := a.rollMounting(env, mountsVarSet(cur.Id))
	if err != nil {
		return nil, err
	}
	a.touchEnv(env.Id) // the old version goes at once when no kept spec mounts it
	if err := a.event("variable_set.updated", "variable_set", next.Id, next.OrgId, env.ProjectId, nil); err != nil {
		return nil, err
	}
	out := proto.Clone(next).(*atollv1.VariableSet)
	out.RollingApps = rolled
	return out, a.setEnvUsage(env.Id)
}

func (a *applier) applyUpdateFile(c *atollv1.UpdateFileCmd) (*atollv1.File, error) {
	cur := a.tx.File(c.FileId)
	if cur == nil || cur.OrgId != a.cmd.OrgId {
		return nil, apierr.NotFound("file", c.FileId)
	}
	env, err := a.liveEnv(cur.EnvId)
	if err != nil {
		return nil, err
	}
	if c.ExpectedVersion != 0 && c.ExpectedVersion != FileVersion(cur) {
		return nil, apierr.Aborted("file %s is at version %d, not the expected %d: re-read it and retry", cur.Id, FileVersion(cur), c.ExpectedVersion)
	}
	if len(c.Content) > MaxFileBytes {
		return nil, apierr.InvalidField("content", "at most 1 MiB (got %d bytes)", len(c.Content))
	}
	if bytes.Equal(c.Content, cur.Content) {
		out := proto.Clone(cur).(*atollv1.File)
		out.Version = FileVersion(cur)
		return out, nil
	}
	old := proto.Clone(cur).(*atollv1.File)
	old.Version = FileVersion(cur)
	if err := a.tx.Insert(state.TableFileVersions, &atollv1.FileVersion{
		Id: state.ContentVersionID(cur.Id, old.Version), FileId: cur.Id, EnvId: cur.EnvId, Version: old.Version,
		File: old, CreateIndex: a.index,
	}); err != nil {
		return nil, err
	}
	next := proto.Clone(cur).(*atollv1.File)
	sum := sha256.Sum256(c.Content)
	next.Content, next.SizeBytes, next.Sha256 = c.Content, int32(len(c.Content)), hex.EncodeToString(sum[:])
	next.Version, next.ModifyIndex = old.Version+1, a.index
	if err := a.tx.Insert(state.TableFiles, next); err != nil {
		return nil, err
	}
	rolled, err := a.rollMounting(env, mountsFile(cur.Id))
	if err != nil {
		return nil, err
	}
	a.touchEnv(env.Id)
	if err := a.event("file.updated", "file", next.Id, next.OrgId, env.ProjectId, nil); err != nil {
		return nil, err
	}
	out := proto.Clone(next).(*atollv1.File)
	out.RollingApps = rolled
	return out, a.setEnvUsage(env.Id)
}
