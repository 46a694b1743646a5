package api

import (
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// releaseService implements ReleaseService (releases of a project's apps,
// deployments to environments).
type releaseService struct {
	*Services
	atollv1.UnimplementedReleaseServiceServer
}
