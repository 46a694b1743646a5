package fsm

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/quota"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func (a *applier) ts() *timestamppb.Timestamp { return timestamppb.New(a.time) }

func (a *applier) applyCreateOrganization(c *atollv1.CreateOrganizationCmd) (*atollv1.Organization, error) {
	org := c.GetOrganization()
	if org.GetId() == "" || a.tx.Organization(org.Id) != nil {
		return nil, apierr.AlreadyExists("organization", "id", org.GetId(), "the cluster")
	}
	if a.tx.OrganizationBySlug(org.Slug) != nil {
		return nil, apierr.AlreadyExists("organization", "slug", org.Slug, "the cluster")
	}
	org.CreateIndex, org.ModifyIndex, org.Version = a.index, a.index, 1
	org.CreatedAt, org.UpdatedAt = a.ts(), a.ts()
	org.Allocated = &atollv1.Resources{}
	if err := a.tx.Insert(state.TableOrganizations, org); err != nil {
		return nil, err
	}
	if p := c.GetDefaultProject(); p != nil {
		p.CreateIndex, p.ModifyIndex, p.Version = a.index, a.index, 1
		p.CreatedAt, p.UpdatedAt = a.ts(), a.ts()
		if err := a.tx.Insert(state.TableProjects, p); err != nil {
			return nil, err
		}
	}
	if t := c.GetAdminToken(); t != nil {
		t.CreateIndex, t.ModifyIndex = a.index, a.index
		t.CreatedAt = a.ts()
		if err := a.tx.Insert(state.TableTokens, t); err != nil {
			return nil, err
		}
	}
	return org, a.event("organization.created", "organization", org.Id, org.Id, "", nil)
}

func (a *applier) applyUpdateOrganization(c *atollv1.UpdateOrganizationCmd) (*atollv1.Organization, error) {
	cur := a.tx.Organization(a.cmd.OrgId)
	if cur == nil {
		return nil, apierr.NotFound("organization", a.cmd.OrgId)
	}
	org := proto.Clone(cur).(*atollv1.Organization)
	if org.Quota == nil {
		org.Quota = &atollv1.Resources{}
	}
	for _, p := range c.Paths {
		switch p {
		case "name":
			org.Name = c.Patch.GetName()
		case "quota":
			org.Quota = c.Patch.GetQuota()
		case "quota.cpu", "quota.memory", "quota.storage":
			quota.CopyDim(org.Quota, c.Patch.GetQuota(), strings.TrimPrefix(p, "quota."))
		case "defaultEnvironmentQuota":
			org.DefaultEnvironmentQuota = c.Patch.GetDefaultEnvironmentQuota()
		default:
			return nil, apierr.InvalidField("updateMask", "field %q cannot be updated", p)
		}
	}
	if d := org.DefaultEnvironmentQuota; d != nil && slices.Contains(c.Paths, "defaultEnvironmentQuota") {
		if sf, ok := quota.Fits(quota.Of(d), quota.Of(org.Quota)); !ok {
			return nil, apierr.InvalidField("defaultEnvironmentQuota."+sf.Dimension, "%d%s is more than the organization's whole quota (%d%s): every environment created without a quota would be refused",
				sf.Requested, quota.Unit(sf.Dimension), sf.Available, quota.Unit(sf.Dimension))
		}
	}
	if sf, ok := quota.Fits(quota.Of(org.Allocated), quota.Of(org.Quota)); !ok {
		return nil, apierr.FailedPrecondition("organization quota for %s (%d%s) would be below the %d%s already given to its environments; lower their quotas first",
			sf.Dimension, sf.Available, quota.Unit(sf.Dimension), sf.Requested, quota.Unit(sf.Dimension))
	}
	org.ModifyIndex, org.UpdatedAt = a.index, a.ts()
	org.Version++
	if err := a.tx.Insert(state.TableOrganizations, org); err != nil {
		return nil, err
	}
	return org, a.event("organization.updated", "organization", org.Id, org.Id, "", nil)
}

// adjustOrgAllocation adds delta to the organization's allocated quota and environment count.
func (a *applier) adjustOrgAllocation(orgID string, delta quota.Vec, envDelta int32) error {
	cur := a.tx.Organization(orgID)
	if cur == nil {
		return apierr.NotFound("organization", orgID)
	}
	org := proto.Clone(cur).(*atollv1.Organization)
	org.Allocated = quota.Of(org.Allocated).Add(delta).Proto()
	org.EnvironmentCount += envDelta
	org.ModifyIndex = a.index
	return a.tx.Insert(state.TableOrganizations, org)
}

// checkOrgRoom refuses a change that would take the organization's allocated
// quota over its quota.
func (a *applier) checkOrgRoom(orgID string, delta quota.Vec) error {
	org := a.tx.Organization(orgID)
	if org == nil {
		return apierr.NotFound("organization", orgID)
	}
	avail := quota.Available(quota.Of(org.Quota), quota.Of(org.Allocated))
	if sf, ok := quota.Fits(delta, avail); !ok {
		return apierr.QuotaExceeded("organization", sf.Dimension, quota.Unit(sf.Dimension), sf.Requested, sf.Available)
	}
	return nil
}

func (a *applier) applyCreateProject(c *atollv1.CreateProjectCmd) (*atollv1.Project, error) {
	p := c.GetProject()
	if a.tx.Organization(p.GetOrgId()) == nil {
		return nil, apierr.NotFound("organization", p.GetOrgId())
	}
	projects := a.tx.Projects(p.OrgId)
	for _, o := range projects {
		if strings.EqualFold(o.Name, p.Name) {
			return nil, apierr.AlreadyExists("project", "name", p.Name, "the organization")
		}
	}
	slugTaken := func(s string) bool {
		for _, o := range projects {
			if o.Slug == s {
				return true
			}
		}
		return false
	}
	slug, err := uniqueSlug(p.Slug, c.SlugDerived, slugTaken, "project")
	if err != nil {
		return nil, err
	}
	p.Slug = slug
	p.CreateIndex, p.ModifyIndex, p.Version = a.index, a.index, 1
	p.CreatedAt, p.UpdatedAt = a.ts(), a.ts()
	if err := a.tx.Insert(state.TableProjects, p); err != nil {
		return nil, err
	}
	return p, a.event("project.created", "project", p.Id, p.OrgId, p.Id, nil)
}

func (a *applier) ownProject(id string) (*atollv1.Project, error) {
	p := a.tx.Project(id)
	if p == nil || p.OrgId != a.cmd.OrgId {
		return nil, apierr.NotFound("project", id)
	}
	return p, nil
}

func (a *applier) applyUpdateProject(c *atollv1.UpdateProjectCmd) (*atollv1.Project, error) {
	cur, err := a.ownProject(c.ProjectId)
	if err != nil {
		return nil, err
	}
	p := proto.Clone(cur).(*atollv1.Project)
	for _, path := range c.Paths {
		switch path {
		case "name":
			for _, o := range a.tx.Projects(p.OrgId) {
				if o.Id != p.Id && strings.EqualFold(o.Name, c.Patch.GetName()) {
					return nil, apierr.AlreadyExists("project", "name", c.Patch.GetName(), "the organization")
				}
			}
			p.Name = c.Patch.GetName()
		case "description":
			p.Description = c.Patch.GetDescription()
		default:
			return nil, apierr.InvalidField("updateMask", "field %q cannot be updated", path)
		}
	}
	p.ModifyIndex, p.UpdatedAt = a.index, a.ts()
	p.Version++
	if err := a.tx.Insert(state.TableProjects, p); err != nil {
		return nil, err
	}
	return p, a.event("project.updated", "project", p.Id, p.OrgId, p.Id, nil)
}

func (a *applier) applyDeleteProject(c *atollv1.DeleteProjectCmd) error {
	p, err := a.ownProject(c.ProjectId)
	if err != nil {
		return err
	}
	if p.IsDefault {
		return apierr.FailedPrecondition("project %q is the organization's default project and cannot be deleted", p.Name)
	}
	live := 0
	for _, e := range a.tx.ProjectEnvironments(p.Id) {
		if !e.IsDeleted {
			live++
		}
	}
	if live > 0 {
		return apierr.FailedPrecondition("project %q still has %d environment(s); delete them first", p.Name, live)
	}
	if err := a.tx.Delete(state.TableProjects, p); err != nil {
		return err
	}
	return a.event("project.deleted", "project", p.Id, p.OrgId, p.Id, nil)
}

func (a *applier) applyCreateToken(c *atollv1.CreateTokenCmd) (*atollv1.Token, error) {
	t := c.GetToken()
	if a.tx.Organization(t.GetOrgId()) == nil {
		return nil, apierr.NotFound("organization", t.GetOrgId())
	}
	if t.SecretHash == "" || a.tx.TokenByHash(t.SecretHash) != nil || a.tx.Token(t.Id) != nil {
		return nil, apierr.AlreadyExists("token", "id", t.Id, "the cluster")
	}
	t.CreateIndex, t.ModifyIndex = a.index, a.index
	t.CreatedAt = a.ts()
	if err := a.tx.Insert(state.TableTokens, t); err != nil {
		return nil, err
	}
	return t, a.event("token.created", "token", t.Id, t.OrgId, "", nil)
}

func (a *applier) applyRevokeToken(c *atollv1.RevokeTokenCmd) error {
	cur := a.tx.Token(c.TokenId)
	if cur == nil || cur.OrgId != a.cmd.OrgId {
		return apierr.NotFound("token", c.TokenId)
	}
	if cur.Revoked {
		return nil
	}
	t := proto.Clone(cur).(*atollv1.Token)
	t.Revoked, t.RevokedAt, t.ModifyIndex = true, a.ts(), a.index
	if err := a.tx.Insert(state.TableTokens, t); err != nil {
		return err
	}
	return a.event("token.revoked", "token", t.Id, t.OrgId, "", nil)
}

func (a *applier) event(typ, objType, objID, orgID, projectID string, env *atollv1.Environment) error {
	return a.tx.AppendEvent(&atollv1.Event{
		Index: a.index, Type: typ, ObjectType: objType, ObjectId: objID,
		OrgId: orgID, ProjectId: projectID, Time: a.ts(), Environment: env,
	})
}
