// Package state is the control plane's in-memory state: go-memdb tables of
// immutable protobuf objects. Only the FSM writes (through Txn); everything
// else reads from snapshots. Objects in the store are never mutated: copy
// (proto.Clone), change, insert.
package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Table names.
const (
	TableOrganizations  = "organizations"
	TableProjects       = "projects"
	TableEnvironments   = "environments"
	TableEnvVersions    = "environment_versions"
	TableTokens         = "tokens"
	TableEvents         = "events"
	TableServers        = "servers"
	TableMeta           = "meta"
	TableApps           = "apps"
	TableInstances      = "instances"
	TableNodes          = "nodes"
	TableVolumes        = "volumes"
	TableVariableSets   = "variable_sets"
	TableFiles          = "files"
	TableReleases       = "releases"
	TableDeployments    = "deployments"
	TableBlueprints     = "blueprints"
	TableAppSpecs       = "app_specs"
	TableVarSetVersions = "varset_versions"
	TableFileVersions   = "file_versions"
)

// Tables lists every table in snapshot order.
var Tables = []string{TableMeta, TableServers, TableOrganizations, TableProjects, TableTokens, TableEnvironments, TableEnvVersions, TableEvents,
	TableNodes, TableApps, TableInstances, TableVolumes, TableVariableSets, TableFiles,
	TableReleases, TableDeployments, TableBlueprints,
	TableAppSpecs, TableVarSetVersions, TableFileVersions} // new tables go last: a snapshot numbers tables by position

// id is the primary index on a protobuf object's Id.
func id() *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: "id", Unique: true, Indexer: byID}
}

func byField(name, field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, Indexer: &memdb.StringFieldIndex{Field: field}}
}

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		TableMeta:    {Name: TableMeta, Indexes: map[string]*memdb.IndexSchema{"id": {Name: "id", Unique: true, Indexer: metaKey}}},
		TableServers: {Name: TableServers, Indexes: map[string]*memdb.IndexSchema{"id": id()}},
		TableOrganizations: {Name: TableOrganizations, Indexes: map[string]*memdb.IndexSchema{
			"id": id(),
			"slug": {Name: "slug", Unique: true, Indexer: strIndex{get: func(o any) (string, bool) {
				org, ok := o.(*atollv1.Organization)
				return org.GetSlug(), ok
			}}},
		}},
		TableProjects: {Name: TableProjects, Indexes: map[string]*memdb.IndexSchema{
			"id":  id(),
			"org": byField("org", "OrgId"),
		}},
		TableTokens: {Name: TableTokens, Indexes: map[string]*memdb.IndexSchema{
			"id":   id(),
			"hash": {Name: "hash", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "SecretHash"}},
			"org":  byField("org", "OrgId"),
		}},
		TableEnvironments: {Name: TableEnvironments, Indexes: map[string]*memdb.IndexSchema{
			"id": id(),
			// Organization, project+name and project+slug in one tree.
			// Non-unique: soft-deleted environments keep their names.
			"handle": {Name: "handle", Indexer: envHandles{}},
		}},
		TableEnvVersions: {Name: TableEnvVersions, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: envVersionID{}},
		}},
		TableNodes: {Name: TableNodes, Indexes: map[string]*memdb.IndexSchema{"id": id()}},
		TableApps: {Name: TableApps, Indexes: map[string]*memdb.IndexSchema{
			"id":  id(),
			"env": byField("env", "EnvIdRef"),
		}},
		TableInstances: {Name: TableInstances, Indexes: map[string]*memdb.IndexSchema{
			"id":   id(),
			"app":  byField("app", "AppId"),
			"env":  byField("env", "EnvId"),
			"node": {Name: "node", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "NodeId"}},
		}},
		TableVolumes:      {Name: TableVolumes, Indexes: map[string]*memdb.IndexSchema{"id": id(), "env": byField("env", "EnvId")}},
		TableVariableSets: {Name: TableVariableSets, Indexes: map[string]*memdb.IndexSchema{"id": id(), "env": byField("env", "EnvId")}},
		TableFiles:        {Name: TableFiles, Indexes: map[string]*memdb.IndexSchema{"id": id(), "env": byField("env", "EnvId")}},
		TableReleases:     {Name: TableReleases, Indexes: map[string]*memdb.IndexSchema{"id": id(), "project": byField("project", "ProjectId")}},
		TableDeployments:  {Name: TableDeployments, Indexes: map[string]*memdb.IndexSchema{"id": id(), "env": byField("env", "EnvironmentId")}},
		TableBlueprints:   {Name: TableBlueprints, Indexes: map[string]*memdb.IndexSchema{"id": id(), "org": byField("org", "OrgId")}},
		TableAppSpecs: {Name: TableAppSpecs, Indexes: map[string]*memdb.IndexSchema{
			"id":  id(),
			"app": byField("app", "AppId"),
			"env": byField("env", "EnvId"),
		}},
		TableVarSetVersions: {Name: TableVarSetVersions, Indexes: map[string]*memdb.IndexSchema{
			"id":  id(),
			"env": byField("env", "EnvId"),
		}},
		TableFileVersions: {Name: TableFileVersions, Indexes: map[string]*memdb.IndexSchema{
			"id":  id(),
			"env": byField("env", "EnvId"),
		}},
		TableEvents: {Name: TableEvents, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: eventSeq{}},
		}},
	}}
}

func mustSchema() *memdb.DBSchema {
	s := schema()
	if err := s.Validate(); err != nil {
		panic(fmt.Sprintf("state: invalid schema: %v", err))
	}
	return s
}
