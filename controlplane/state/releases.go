package state

import (
	"sort"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Release by id, or nil.
func (t *Txn) Release(id string) *atollv1.Release {
	return first[*atollv1.Release](t, TableReleases, "id", id)
}

// Releases of a project, oldest first.
func (t *Txn) Releases(projectID string) []*atollv1.Release {
	out := all[*atollv1.Release](t, TableReleases, "project", projectID)
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out
}

// Deployments of an environment, oldest first.
func (t *Txn) Deployments(envID string) []*atollv1.Deployment {
	out := all[*atollv1.Deployment](t, TableDeployments, "env", envID)
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreateIndex < out[j].CreateIndex || out[i].CreateIndex == out[j].CreateIndex && out[i].Id < out[j].Id
	})
	return out
}

// Blueprint by id, or nil.
func (t *Txn) Blueprint(id string) *atollv1.Blueprint {
	return first[*atollv1.Blueprint](t, TableBlueprints, "id", id)
}

// Blueprints of an organization, oldest first.
func (t *Txn) Blueprints(orgID string) []*atollv1.Blueprint {
	out := all[*atollv1.Blueprint](t, TableBlueprints, "org", orgID)
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out
}
