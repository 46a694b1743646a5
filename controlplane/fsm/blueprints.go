package fsm

import (
	"github.com/atollhq/atoll/controlplane/apierr"
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
