package state

import (
	"sort"
	"strconv"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// App by id (deleted included), or nil.
func (t *Txn) App(id string) *atollv1.App { return first[*atollv1.App](t, TableApps, "id", id) }

// Apps of an environment (deleted included), in creation order.
func (t *Txn) Apps(envID string) []*atollv1.App {
	out := all[*atollv1.App](t, TableApps, "env", envID)
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out
}

// LiveAppByName finds a not-deleted app of an environment by name.
func (t *Txn) LiveAppByName(envID, name string) *atollv1.App {
	for _, a := range t.Apps(envID) {
		if !a.IsDeleted && a.Name == name {
			return a
		}
	}
	return nil
}

// AllApps lists every app of the cluster.
func (t *Txn) AllApps() []*atollv1.App { return all[*atollv1.App](t, TableApps, "id") }

// Instance by id, or nil.
func (t *Txn) Instance(id string) *atollv1.Instance {
	return first[*atollv1.Instance](t, TableInstances, "id", id)
}

// AppInstances lists an app's instances.
func (t *Txn) AppInstances(appID string) []*atollv1.Instance {
	out := all[*atollv1.Instance](t, TableInstances, "app", appID)
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreateIndex < out[j].CreateIndex || out[i].CreateIndex == out[j].CreateIndex && out[i].Id < out[j].Id
	})
	return out
}

// EnvInstances lists an environment's instances.
func (t *Txn) EnvInstances(envID string) []*atollv1.Instance {
	return all[*atollv1.Instance](t, TableInstances, "env", envID)
}

// NodeInstances lists the instances placed on a node.
func (t *Txn) NodeInstances(nodeID string) []*atollv1.Instance {
	return all[*atollv1.Instance](t, TableInstances, "node", nodeID)
}

// AllInstances lists every instance, with a channel closed when any changes.
func (t *Txn) AllInstances() ([]*atollv1.Instance, <-chan struct{}) {
	it, err := t.tx.Get(TableInstances, "id")
	if err != nil {
		return nil, nil
	}
	var out []*atollv1.Instance
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*atollv1.Instance))
	}
	return out, it.WatchCh()
}

// Node by id, or nil.
func (t *Txn) Node(id string) *atollv1.Node { return first[*atollv1.Node](t, TableNodes, "id", id) }

// Nodes lists every node, with a channel closed when any node changes.
func (t *Txn) Nodes() ([]*atollv1.Node, <-chan struct{}) {
	it, err := t.tx.Get(TableNodes, "id")
	if err != nil {
		return nil, nil
	}
	var out []*atollv1.Node
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*atollv1.Node))
	}
	return out, it.WatchCh()
}

// Volume by id, or nil.
func (t *Txn) Volume(id string) *atollv1.Volume {
	return first[*atollv1.Volume](t, TableVolumes, "id", id)
}

// Volumes of an environment.
func (t *Txn) Volumes(envID string) []*atollv1.Volume {
	return all[*atollv1.Volume](t, TableVolumes, "env", envID)
}

// VariableSet by id, or nil.
func (t *Txn) VariableSet(id string) *atollv1.VariableSet {
	return first[*atollv1.VariableSet](t, TableVariableSets, "id", id)
}

// VariableSets of an environment.
func (t *Txn) VariableSets(envID string) []*atollv1.VariableSet {
	return all[*atollv1.VariableSet](t, TableVariableSets, "env", envID)
}

// File by id, or nil.
func (t *Txn) File(id string) *atollv1.File { return first[*atollv1.File](t, TableFiles, "id", id) }

// Files of an environment.
func (t *Txn) Files(envID string) []*atollv1.File {
	return all[*atollv1.File](t, TableFiles, "env", envID)
}

// TableWatch returns a channel closed when anything in table changes.
func (t *Txn) TableWatch(table string) <-chan struct{} {
	it, err := t.tx.Get(table, "id")
	if err != nil {
		return nil
	}
	return it.WatchCh()
}

// VolumeIDs lists the ids of every volume.
func (t *Txn) VolumeIDs() []string {
	var out []string
	for _, v := range all[*atollv1.Volume](t, TableVolumes, "id") {
		out = append(out, v.Id)
	}
	return out
}

// AppSpecID is the id of the kept spec of an app version.
func AppSpecID(appID string, version int64) string {
	return appID + "@" + strconv.FormatInt(version, 10)
}

// AppSpec is the kept spec of an older version of an app, or nil.
func (t *Txn) AppSpec(appID string, version int64) *atollv1.AppSpec {
	return first[*atollv1.AppSpec](t, TableAppSpecs, "id", AppSpecID(appID, version))
}

// AppSpecs lists the kept specs of an app, oldest version first.
func (t *Txn) AppSpecs(appID string) []*atollv1.AppSpec {
	out := all[*atollv1.AppSpec](t, TableAppSpecs, "app", appID)
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// ContentVersionID is the id of a kept version of a variable set or file.
func ContentVersionID(id string, version int64) string {
	return id + "@" + strconv.FormatInt(version, 10)
}

// VariableSetVersion is the kept content of an older version of a variable
// set, or nil.
func (t *Txn) VariableSetVersion(setID string, version int64) *atollv1.VariableSetVersion {
	return first[*atollv1.VariableSetVersion](t, TableVarSetVersions, "id", ContentVersionID(setID, version))
}

// EnvVariableSetVersions lists the kept variable set versions of an
// environment, in id order.
func (t *Txn) EnvVariableSetVersions(envID string) []*atollv1.VariableSetVersion {
	out := all[*atollv1.VariableSetVersion](t, TableVarSetVersions, "env", envID)
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out
}

// FileVersion is the kept content of an older version of a file, or nil.
func (t *Txn) FileVersion(fileID string, version int64) *atollv1.FileVersion {
	return first[*atollv1.FileVersion](t, TableFileVersions, "id", ContentVersionID(fileID, version))
}

// EnvFileVersions lists the kept file versions of an environment, in id order.
func (t *Txn) EnvFileVersions(envID string) []*atollv1.FileVersion {
	out := all[*atollv1.FileVersion](t, TableFileVersions, "env", envID)
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out
}

// EnvAppSpecs lists the kept app specs of an environment, in id order.
func (t *Txn) EnvAppSpecs(envID string) []*atollv1.AppSpec {
	out := all[*atollv1.AppSpec](t, TableAppSpecs, "env", envID)
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out
}
