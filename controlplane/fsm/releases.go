package fsm

import (
	"github.com/atollhq/atoll/controlplane/apierr"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// TODO(releases): implemented by the releases work.
func (a *applier) applyCreateRelease(c *atollv1.CreateReleaseCmd) (*atollv1.Release, error) {
	return nil, apierr.FailedPrecondition("releases are not implemented yet")
}

func (a *applier) applyDeployRelease(c *atollv1.DeployReleaseCmd) (*atollv1.Deployment, error) {
	return nil, apierr.FailedPrecondition("releases are not implemented yet")
}

func (a *applier) applyUndeployApp(c *atollv1.UndeployAppCmd) (*atollv1.Deployment, error) {
	return nil, apierr.FailedPrecondition("releases are not implemented yet")
}
