package api

import (
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// blueprintService implements BlueprintService (environment templates).
type blueprintService struct {
	*Services
	atollv1.UnimplementedBlueprintServiceServer
}
