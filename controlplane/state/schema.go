// Package state is the control plane's in-memory state: go-memdb tables of
// immutable protobuf objects. Only the FSM writes (through Txn); everything
// else reads from snapshots. Objects in the store are never mutated: copy
// (proto.Clone), change, insert.
package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// Table names.
const (
	TableOrganizations = "organizations"
	TableProjects      = "projects"
	TableEnvironments  = "environments"
	TableEnvVersions   = "environment_versions"
	TableTokens        = "tokens"
	TableEvents        = "events"
	TableServers       = "servers"
	TableMeta          = "meta"
	TableApps          = "apps"
	TableInstances     = "instances"
	TableNodes         = "nodes"
	TableVolumes       = "volumes"
	TableVariableSets  = "variable_sets"
	TableFiles         = "files"
	TableReleases      = "releases"
	TableDeployments   = "deployments"
	TableBlueprints    = "blueprints"
)

// Tables lists every table in snapshot order.
var Tables = []string{TableMeta, TableServers, TableOrganizations, TableProjects, TableTokens, TableEnvironments, TableEnvVersions, TableEvents,
	TableNodes, TableApps, TableInstances, TableVolumes, TableVariableSets, TableFiles,
	TableReleases, TableDeployments, TableBlueprints}

func id(field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: field}}
}

func byField(name, field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, Indexer: &memdb.StringFieldIndex{Field: field}}
}

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		TableMeta:    {Name: TableMeta, Indexes: map[string]*memdb.IndexSchema{"id": id("Key")}},
		TableServers: {Name: TableServers, Indexes: map[string]*memdb.IndexSchema{"id": id("Id")}},
		TableOrganizations: {Name: TableOrganizations, Indexes: map[string]*memdb.IndexSchema{
			"id":   id("Id"),
			"slug": {Name: "slug", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Slug"}},
		}},
		TableProjects: {Name: TableProjects, Indexes: map[string]*memdb.IndexSchema{
			"id":  id("Id"),
			"org": byField("org", "OrgId"),
		}},
		TableTokens: {Name: TableTokens, Indexes: map[string]*memdb.IndexSchema{
			"id":   id("Id"),
			"hash": {Name: "hash", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "SecretHash"}},
			"org":  byField("org", "OrgId"),
		}},
		TableEnvironments: {Name: TableEnvironments, Indexes: map[string]*memdb.IndexSchema{
			"id":      id("Id"),
			"org":     byField("org", "OrgId"),
			"project": byField("project", "ProjectId"),
			// Non-unique: soft-deleted environments keep their names.
			"name": {Name: "name", Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "ProjectId"},
				&memdb.StringFieldIndex{Field: "Name", Lowercase: true},
			}}},
			"slug": {Name: "slug", Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "ProjectId"},
				&memdb.StringFieldIndex{Field: "Slug"},
			}}},
		}},
		TableEnvVersions: {Name: TableEnvVersions, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "EnvID"},
				&memdb.IntFieldIndex{Field: "Version"},
			}}},
		}},
		TableNodes: {Name: TableNodes, Indexes: map[string]*memdb.IndexSchema{"id": id("Id")}},
		TableApps: {Name: TableApps, Indexes: map[string]*memdb.IndexSchema{
			"id":  id("Id"),
			"env": byField("env", "EnvIdRef"),
		}},
		TableInstances: {Name: TableInstances, Indexes: map[string]*memdb.IndexSchema{
			"id":   id("Id"),
			"app":  byField("app", "AppId"),
			"env":  byField("env", "EnvId"),
			"node": {Name: "node", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "NodeId"}},
		}},
		TableVolumes:      {Name: TableVolumes, Indexes: map[string]*memdb.IndexSchema{"id": id("Id"), "env": byField("env", "EnvId")}},
		TableVariableSets: {Name: TableVariableSets, Indexes: map[string]*memdb.IndexSchema{"id": id("Id"), "env": byField("env", "EnvId")}},
		TableFiles:        {Name: TableFiles, Indexes: map[string]*memdb.IndexSchema{"id": id("Id"), "env": byField("env", "EnvId")}},
		TableReleases:     {Name: TableReleases, Indexes: map[string]*memdb.IndexSchema{"id": id("Id"), "project": byField("project", "ProjectId")}},
		TableDeployments:  {Name: TableDeployments, Indexes: map[string]*memdb.IndexSchema{"id": id("Id"), "env": byField("env", "EnvironmentId")}},
		TableBlueprints:   {Name: TableBlueprints, Indexes: map[string]*memdb.IndexSchema{"id": id("Id"), "org": byField("org", "OrgId")}},
		TableEvents: {Name: TableEvents, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.UintFieldIndex{Field: "Seq"}},
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
