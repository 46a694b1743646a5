package api

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

const timeHour = time.Hour

func itoa(i int) string { return strconv.Itoa(i) }

func cloneProject(p *atollv1.Project) *atollv1.Project { return proto.Clone(p).(*atollv1.Project) }

func cloneOrg(o *atollv1.Organization) *atollv1.Organization {
	return proto.Clone(o).(*atollv1.Organization)
}

func cloneToken(t *atollv1.Token) *atollv1.Token { return proto.Clone(t).(*atollv1.Token) }
