package fsm

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/quota"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// uniqueSlug returns slug if free; a derived slug gets -2, -3, ... instead of a conflict.
func uniqueSlug(slug string, derived bool, taken func(string) bool, kind string) (string, error) {
	if !taken(slug) {
		return slug, nil
	}
	if !derived {
		return "", apierr.AlreadyExists(kind, "slug", slug, "the parent")
	}
	for i := 2; ; i++ {
		suffix := fmt.Sprintf("-%d", i)
		base := slug
		if len(base)+len(suffix) > 63 {
			base = strings.TrimRight(base[:63-len(suffix)], "-")
		}
		if s := base + suffix; !taken(s) {
			return s, nil
		}
	}
}

// liveEnv returns a not-deleted environment of the caller's organization.
func (a *applier) liveEnv(id string) (*atollv1.Environment, error) {
	e := a.tx.Environment(id)
	if e == nil || e.OrgId != a.cmd.OrgId {
		return nil, apierr.NotFound("environment", id)
	}
	if e.IsDeleted {
		return nil, apierr.EnvDeleted(id)
	}
	return e, nil
}

func (a *applier) applyCreateEnvironment(c *atollv1.CreateEnvironmentCmd) (*atollv1.Environment, error) {
	env := c.GetEnvironment()
	if env.GetId() == "" || a.tx.Environment(env.Id) != nil {
		return nil, apierr.AlreadyExists("environment", "id", env.GetId(), "the cluster")
	}
	if env.OrgId != a.cmd.OrgId {
		return nil, apierr.NotFound("organization", env.OrgId)
	}
	if p := a.tx.Project(env.ProjectId); p == nil || p.OrgId != env.OrgId {
		return nil, apierr.NotFound("project", env.ProjectId)
	}
	if a.tx.LiveEnvironmentByName(env.ProjectId, env.Name) != nil {
		return nil, apierr.AlreadyExists("environment", "name", env.Name, "project "+env.ProjectId)
	}
	slug, err := uniqueSlug(env.Slug, c.SlugDerived, func(s string) bool { return a.tx.LiveEnvironmentBySlug(env.ProjectId, s) != nil }, "environment")
	if err != nil {
		return nil, err
	}
	q := quota.Of(env.ResourceQuota)
	if err := a.checkOrgRoom(env.OrgId, q); err != nil {
		return nil, err
	}
	if err := a.checkCarried(c, env); err != nil {
		return nil, err
	}
	// All checks passed: write.
	requested := env.Slug
	if env.IsDefault {
		if err := a.clearDefault(env.ProjectId, env.Id); err != nil {
			return nil, err
		}
	}
	env.Slug = slug
	env.CompanyIdRef = env.OrgId
	env.CreateIndex, env.ModifyIndex, env.Version = a.index, a.index, 1
	env.CreatedAt, env.UpdatedAt = a.ts(), a.ts()
	env.CreatedBy, env.ModifiedBy = a.cmd.Actor, a.cmd.Actor
	env.ResourceUsage = &atollv1.Resources{}
	// An environment without apps has nothing to provision: it is running.
	env.Status, env.StartedAt = atollv1.EnvironmentStatus_RUNNING, a.ts()
	if err := a.adjustOrgAllocation(env.OrgId, q, 1); err != nil {
		return nil, err
	}
	if err := a.saveEnv(nil, env, "create", "environment.created"); err != nil {
		return nil, err
	}
	if !hasCarried(c) {
		return env, nil
	}
	if err := a.writeCarried(c, env, requested); err != nil {
		return nil, err
	}
	return a.tx.Environment(env.Id), nil
}

// clearDefault makes the project's other default environment non-default.
// That is a change like any other: a new version, a history entry and an
// event (it used to be rewritten in place, invisible to history and watchers,
// with a new modifyIndex but the same version).
func (a *applier) clearDefault(projectID, keep string) error {
	for _, o := range a.tx.ProjectEnvironments(projectID) {
		if o.IsDefault && o.Id != keep {
			cp := proto.Clone(o).(*atollv1.Environment)
			cp.IsDefault = false
			a.bump(cp)
			if err := a.saveEnv(o, cp, "update", "environment.updated"); err != nil {
				return err
			}
		}
	}
	return nil
}

// saveEnv inserts env, records its history entry and event.
func (a *applier) saveEnv(prev, env *atollv1.Environment, action, eventType string) error {
	if err := a.tx.Insert(state.TableEnvironments, env); err != nil {
		return err
	}
	entry := &atollv1.EnvironmentVersion{
		Version: env.Version, ModifiedBy: a.cmd.Actor, ModifiedAt: a.ts(), Action: action,
		ChangedFields: changedFields(prev, env), Environment: env,
	}
	if err := a.tx.InsertEnvironmentVersion(entry); err != nil {
		return err
	}
	return a.event(eventType, "environment", env.Id, env.OrgId, env.ProjectId, env)
}

// bump prepares the next version of an environment.
func (a *applier) bump(env *atollv1.Environment) {
	env.Version++
	env.ModifyIndex = a.index
	env.UpdatedAt = a.ts()
	env.ModifiedBy = a.cmd.Actor
}

// bookkeeping fields are not "changes" in history.
var bookkeeping = map[string]bool{"version": true, "modifyIndex": true, "updatedAt": true, "modifiedBy": true, "createIndex": true}

// changedFields lists the top-level fields (JSON names) that differ.
func changedFields(prev, cur *atollv1.Environment) []string {
	if prev == nil {
		return nil
	}
	var out []string
	pr, cr := prev.ProtoReflect(), cur.ProtoReflect()
	fields := cr.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if bookkeeping[fd.JSONName()] {
			continue
		}
		if !valueEqual(fd, pr, cr) {
			out = append(out, fd.JSONName())
		}
	}
	return out
}

func valueEqual(fd protoreflect.FieldDescriptor, a, b protoreflect.Message) bool {
	if a.Has(fd) != b.Has(fd) {
		return false
	}
	return a.Get(fd).Equal(b.Get(fd))
}

func (a *applier) applyUpdateEnvironment(c *atollv1.UpdateEnvironmentCmd) (*atollv1.Environment, error) {
	cur, err := a.liveEnv(c.EnvironmentId)
	if err != nil {
		return nil, err
	}
	if c.ExpectedVersion != 0 && c.ExpectedVersion != cur.Version {
		return nil, apierr.Aborted("environment %s is at version %d, not the expected %d: re-read it and retry", cur.Id, cur.Version, c.ExpectedVersion)
	}
	env := proto.Clone(cur).(*atollv1.Environment)
	p := c.GetPatch()
	if env.ResourceQuota == nil {
		env.ResourceQuota = &atollv1.Resources{}
	}
	for _, path := range c.Paths {
		switch path {
		case "name":
			if other := a.tx.LiveEnvironmentByName(env.ProjectId, p.GetName()); other != nil && other.Id != env.Id {
				return nil, apierr.AlreadyExists("environment", "name", p.GetName(), "project "+env.ProjectId)
			}
			env.Name = p.GetName()
		case "description":
			env.Description = p.GetDescription()
		case "labels":
			env.Labels = p.GetLabels()
		case "variables":
			env.Variables = p.GetVariables()
		case "isDefault":
			env.IsDefault = p.GetIsDefault()
		case "resourceQuota":
			env.ResourceQuota = p.GetResourceQuota()
		case "resourceQuota.cpu", "resourceQuota.memory", "resourceQuota.storage":
			quota.CopyDim(env.ResourceQuota, p.GetResourceQuota(), strings.TrimPrefix(path, "resourceQuota."))
		case "ttl", "expiresAt":
			env.Ttl, env.ExpiresAt = p.GetTtl(), p.GetExpiresAt()
		default:
			return nil, apierr.InvalidField("updateMask", "field %q cannot be updated", path)
		}
	}
	if err := a.checkQuotaChange(cur, env); err != nil {
		return nil, err
	}
	if len(changedFields(cur, env)) == 0 {
		return cur, nil // nothing to do: no new version
	}
	if env.IsDefault && !cur.IsDefault {
		if err := a.clearDefault(env.ProjectId, env.Id); err != nil {
			return nil, err
		}
	}
	a.bump(env)
	if err := a.adjustOrgAllocation(env.OrgId, quota.Of(env.ResourceQuota).Sub(quota.Of(cur.ResourceQuota)), 0); err != nil {
		return nil, err
	}
	return env, a.saveEnv(cur, env, "update", "environment.updated")
}

// checkQuotaChange refuses a new environment quota below what its apps use,
// or one the organization has no room for.
func (a *applier) checkQuotaChange(cur, env *atollv1.Environment) error {
	newQ := quota.Of(env.ResourceQuota)
	if sf, ok := quota.Fits(quota.Of(env.ResourceUsage), newQ); !ok {
		return apierr.FailedPrecondition("environment quota for %s (%d%s) would be below the %d%s its apps already use; scale them down first",
			sf.Dimension, sf.Available, quota.Unit(sf.Dimension), sf.Requested, quota.Unit(sf.Dimension))
	}
	var oldQ quota.Vec
	if cur != nil && !cur.IsDeleted {
		oldQ = quota.Of(cur.ResourceQuota)
	}
	growth := newQ.Sub(oldQ)
	growth = quota.Vec{CPU: max(growth.CPU, 0), Memory: max(growth.Memory, 0), Storage: max(growth.Storage, 0)}
	return a.checkOrgRoom(env.OrgId, growth)
}

// running says whether an environment holds running instances that a delete must stop.
func running(e *atollv1.Environment) bool {
	return e.GetResources().GetInstances() > 0
}

func (a *applier) applyDeleteEnvironment(c *atollv1.DeleteEnvironmentCmd) (*atollv1.Environment, error) {
	if c.Purge {
		cur := a.tx.Environment(c.EnvironmentId)
		if cur == nil || cur.OrgId != a.cmd.OrgId {
			return nil, apierr.NotFound("environment", c.EnvironmentId)
		}
		return a.purge(cur)
	}
	cur, err := a.liveEnv(c.EnvironmentId)
	if err != nil {
		return nil, err
	}
	// A running environment's apps are stopped by the delete (soft: it can
	// be restored), as the APIs users come from do on a plain DELETE.
	return a.softDelete(cur, "delete", "environment.deleted")
}

func (a *applier) softDelete(cur *atollv1.Environment, action, eventType string) (*atollv1.Environment, error) {
	env := proto.Clone(cur).(*atollv1.Environment)
	env.IsDeleted, env.DeletedAt, env.IsDefault = true, a.ts(), false
	env.Status = atollv1.EnvironmentStatus_STOPPED
	if running(cur) {
		env.Status = atollv1.EnvironmentStatus_TERMINATING
	}
	a.bump(env)
	if err := a.adjustOrgAllocation(env.OrgId, quota.Of(cur.ResourceQuota).Scale(-1), -1); err != nil {
		return nil, err
	}
	if _, err := a.stopEnvInstances(env.Id, true); err != nil {
		return nil, err
	}
	if env.Resources != nil {
		env.Resources.Instances = 0
	}
	env.Status = atollv1.EnvironmentStatus_STOPPED
	return env, a.saveEnv(cur, env, action, eventType)
}

// purge removes an environment from the state for good, with its history
// and every object that belongs to it. A live one is soft-deleted first, in
// the same apply, so its apps stop and its quota returns to the
// organization exactly as on a plain delete (a soft-deleted one gave its
// quota back when it was deleted). The agents see the rest: the instances
// leave their assignments (containers removed), the volumes leave the
// volume list (data removed), the apps' public routes go with the apps.
// Releases belong to the project and stay.
func (a *applier) purge(cur *atollv1.Environment) (*atollv1.Environment, error) {
	if !cur.IsDeleted {
		var err error
		if cur, err = a.softDelete(cur, "delete", "environment.deleted"); err != nil {
			return nil, err
		}
	}
	if _, err := a.tx.DeleteEnvironmentObjects(cur.Id); err != nil {
		return nil, err
	}
	if err := a.tx.Delete(state.TableEnvironments, cur); err != nil {
		return nil, err
	}
	return cur, a.event("environment.purged", "environment", cur.Id, cur.OrgId, cur.ProjectId, cur)
}

// applyPurgeDeletedEnvironments is the retention sweep: it purges the listed
// environments that are still soft-deleted since deletedBefore or earlier.
func (a *applier) applyPurgeDeletedEnvironments(c *atollv1.PurgeDeletedEnvironmentsCmd) error {
	if c.DeletedBefore == nil {
		return apierr.InvalidField("deletedBefore", "is required")
	}
	before := c.DeletedBefore.AsTime()
	for _, id := range c.EnvironmentIds {
		cur := a.tx.Environment(id)
		if cur == nil || !cur.IsDeleted || DeletedAt(cur).After(before) {
			continue // purged, restored or deleted again since the leader looked: skip, never fail the batch
		}
		if _, err := a.purge(cur); err != nil {
			return err
		}
	}
	return nil
}

// DeletedAt is when a soft-deleted environment was deleted (its last change
// if that was not recorded).
func DeletedAt(e *atollv1.Environment) time.Time {
	if e.DeletedAt != nil {
		return e.DeletedAt.AsTime()
	}
	return e.GetUpdatedAt().AsTime()
}

func (a *applier) applyRestoreEnvironment(c *atollv1.RestoreEnvironmentCmd) (*atollv1.Environment, error) {
	cur := a.tx.Environment(c.EnvironmentId)
	if cur == nil || cur.OrgId != a.cmd.OrgId {
		return nil, apierr.NotFound("environment", c.EnvironmentId)
	}
	env := proto.Clone(cur).(*atollv1.Environment)
	if c.Version == 0 && !cur.IsDeleted {
		return nil, apierr.FailedPrecondition("environment %q is not deleted; pass a version to bring back older settings", cur.Name)
	}
	if p := a.tx.Project(cur.ProjectId); p == nil || p.OrgId != cur.OrgId {
		return nil, apierr.FailedPrecondition("environment %q belonged to project %s, which has been deleted; it cannot be restored", cur.Name, cur.ProjectId)
	}
	if c.Version != 0 {
		old := a.tx.EnvironmentVersion(cur.Id, int(c.Version))
		if old == nil {
			return nil, apierr.NotFound("environment version", fmt.Sprintf("%s@%d", cur.Id, c.Version))
		}
		o := old.GetEnvironment()
		env.Name, env.Description, env.Labels = o.Name, o.Description, o.Labels
		env.ResourceQuota, env.Variables = o.ResourceQuota, o.Variables
		env.Ttl, env.ExpiresAt = o.Ttl, o.ExpiresAt
	}
	if other := a.tx.LiveEnvironmentByName(env.ProjectId, env.Name); other != nil && other.Id != env.Id {
		return nil, apierr.AlreadyExists("environment", "name", env.Name, "project "+env.ProjectId)
	}
	action := "restore"
	if c.Version != 0 {
		action = fmt.Sprintf("restore version %d", c.Version)
	}
	if env.ExpiresAt != nil && !env.ExpiresAt.AsTime().After(a.time) {
		// An expired TTL would delete it again at once: a TTL duration
		// starts anew from now, an expiry with no duration is cleared.
		if d, err := ParseTTL(env.Ttl); err == nil && d > 0 {
			env.ExpiresAt = timestamppb.New(a.time.Add(d))
		} else {
			env.ExpiresAt, env.Ttl = nil, ""
		}
	}
	if err := a.checkQuotaChange(cur, env); err != nil {
		return nil, err
	}
	if cur.IsDeleted {
		env.IsDeleted, env.DeletedAt = false, nil
		env.Status = atollv1.EnvironmentStatus_RUNNING
	}
	a.bump(env)
	delta := quota.Of(env.ResourceQuota)
	var countDelta int32 = 1
	if !cur.IsDeleted {
		delta, countDelta = delta.Sub(quota.Of(cur.ResourceQuota)), 0
	}
	if err := a.adjustOrgAllocation(env.OrgId, delta, countDelta); err != nil {
		return nil, err
	}
	return env, a.saveEnv(cur, env, action, "environment.restored")
}

func (a *applier) applySetEnvironmentState(c *atollv1.SetEnvironmentStateCmd) (*atollv1.Environment, error) {
	cur, err := a.liveEnv(c.EnvironmentId)
	if err != nil {
		return nil, err
	}
	S := atollv1.EnvironmentStatus_name
	env := proto.Clone(cur).(*atollv1.Environment)
	switch c.Action {
	case "start":
		switch cur.Status {
		case atollv1.EnvironmentStatus_STOPPED, atollv1.EnvironmentStatus_HIBERNATING, atollv1.EnvironmentStatus_SLEEPING, atollv1.EnvironmentStatus_ERROR:
		default:
			return nil, apierr.FailedPrecondition("environment %q is %s: only a STOPPED, HIBERNATING, SLEEPING or ERROR environment can be started", cur.Name, S[int32(cur.Status)])
		}
		env.Status, env.StartedAt = atollv1.EnvironmentStatus_RUNNING, a.ts()
		if err := a.startEnvInstances(env.Id); err != nil {
			return nil, err
		}
	case "stop", "hibernate":
		switch cur.Status {
		case atollv1.EnvironmentStatus_RUNNING, atollv1.EnvironmentStatus_PROVISIONING, atollv1.EnvironmentStatus_PENDING,
			atollv1.EnvironmentStatus_SLEEPING, atollv1.EnvironmentStatus_ERROR:
		case atollv1.EnvironmentStatus_STOPPED:
			if c.Action == "hibernate" {
				break
			}
			fallthrough
		default:
			return nil, apierr.FailedPrecondition("environment %q is %s: only a RUNNING, PROVISIONING, PENDING, SLEEPING or ERROR environment can be stopped", cur.Name, S[int32(cur.Status)])
		}
		hibernate := c.Action == "hibernate"
		running, err := a.stopEnvInstances(env.Id, hibernate)
		if err != nil {
			return nil, err
		}
		switch {
		case hibernate:
			env.Status = atollv1.EnvironmentStatus_HIBERNATING
		case running > 0:
			env.Status = atollv1.EnvironmentStatus_STOPPING
		default:
			env.Status = atollv1.EnvironmentStatus_STOPPED
		}
	default:
		return nil, apierr.InvalidField("action", "must be start, stop or hibernate, not %q", c.Action)
	}
	a.bump(env)
	if err := a.saveEnv(cur, env, c.Action, "environment.status_changed"); err != nil {
		return nil, err
	}
	if err := a.setEnvUsage(env.Id); err != nil {
		return nil, err
	}
	return a.tx.Environment(env.Id), nil
}

func (a *applier) applyExpireEnvironments(c *atollv1.ExpireEnvironmentsCmd) error {
	for _, id := range c.WarnIds {
		cur := a.tx.Environment(id)
		if cur == nil || cur.IsDeleted || cur.ExpiresAt == nil || proto.Equal(cur.ExpiryWarnedFor, cur.ExpiresAt) {
			continue
		}
		env := proto.Clone(cur).(*atollv1.Environment)
		env.ExpiryWarnedFor, env.ModifyIndex = cur.ExpiresAt, a.index
		if err := a.tx.Insert(state.TableEnvironments, env); err != nil {
			return err
		}
		if err := a.event("environment.expiring", "environment", env.Id, env.OrgId, env.ProjectId, env); err != nil {
			return err
		}
	}
	for _, id := range c.EnvironmentIds {
		cur := a.tx.Environment(id)
		if cur == nil || cur.IsDeleted || cur.ExpiresAt == nil || cur.ExpiresAt.AsTime().After(a.time) {
			continue // changed since the reaper looked: skip, never fail the batch
		}
		a.cmd.OrgId = cur.OrgId
		if _, err := a.softDelete(cur, "expire", "environment.expired"); err != nil {
			return err
		}
	}
	return nil
}
