package state

import atollv1 "github.com/atollhq/atoll/proto/atoll/v1"

// Deployment by id, or nil.
func (t *Txn) Deployment(id string) *atollv1.Deployment {
	return first[*atollv1.Deployment](t, TableDeployments, "id", id)
}
