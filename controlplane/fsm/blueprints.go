package fsm

import (
	"github.com/atollhq/atoll/controlplane/apierr"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// TODO(blueprints): implemented by the blueprints work.
func (a *applier) applyCreateBlueprint(c *atollv1.CreateBlueprintCmd) (*atollv1.Blueprint, error) {
	return nil, apierr.FailedPrecondition("blueprints are not implemented yet")
}

func (a *applier) applyDeleteBlueprint(c *atollv1.DeleteBlueprintCmd) error {
	return apierr.FailedPrecondition("blueprints are not implemented yet")
}
