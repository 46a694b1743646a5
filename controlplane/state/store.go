package state

import (
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/go-memdb"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Store holds the state. Safe for concurrent use: one writer (the FSM) and
// any number of readers, each on its own consistent snapshot.
type Store struct {
	db *memdb.MemDB
	// EventLimit bounds the event log; older events are dropped.
	eventLimit int
}

// DefaultEventLimit is how many events the log keeps by default.
const DefaultEventLimit = 10000

// New returns an empty store keeping at most eventLimit events (<=0: default).
func New(eventLimit int) *Store {
	if eventLimit <= 0 {
		eventLimit = DefaultEventLimit
	}
	db, err := memdb.NewMemDB(mustSchema())
	if err != nil {
		panic(err) // only on an invalid schema, a programming error
	}
	return &Store{db: db, eventLimit: eventLimit}
}

// EventLimit is the size of the event log.
func (s *Store) EventLimit() int { return s.eventLimit }

// Snapshot returns a consistent read-only view of the state.
func (s *Store) Snapshot() *Txn { return &Txn{tx: s.db.Txn(false), store: s} }

// WriteTxn starts the single write transaction (FSM only). Commit or Abort it.
func (s *Store) WriteTxn() *Txn { return &Txn{tx: s.db.Txn(true), store: s, write: true} }

// Txn is a read or write transaction.
type Txn struct {
	tx    *memdb.Txn
	store *Store
	write bool
}

// Commit applies a write transaction.
func (t *Txn) Commit() { t.tx.Commit() }

// Abort discards a write transaction (no-op for reads).
func (t *Txn) Abort() { t.tx.Abort() }

// Insert stores obj in table, replacing one with the same id.
func (t *Txn) Insert(table string, obj any) error { return t.tx.Insert(table, obj) }

// Delete removes obj from table.
func (t *Txn) Delete(table string, obj any) error { return t.tx.Delete(table, obj) }

func first[T any](t *Txn, table, index string, args ...any) T {
	var zero T
	raw, err := t.tx.First(table, index, args...)
	if err != nil || raw == nil {
		return zero
	}
	return raw.(T)
}

func all[T any](t *Txn, table, index string, args ...any) []T {
	it, err := t.tx.Get(table, index, args...)
	if err != nil {
		return nil
	}
	var out []T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(T))
	}
	return out
}

// Meta returns a bookkeeping value (0 if unset).
func (t *Txn) Meta(key string) uint64 {
	if m := first[*Meta](t, TableMeta, "id", key); m != nil {
		return m.Value
	}
	return 0
}

// SetMeta sets a bookkeeping value.
func (t *Txn) SetMeta(key string, v uint64) error {
	return t.tx.Insert(TableMeta, &Meta{Key: key, Value: v})
}

// AppliedIndex is the raft index of the last command applied to this state.
func (t *Txn) AppliedIndex() uint64 { return t.Meta(MetaAppliedIndex) }

// Organization by id, or nil.
func (t *Txn) Organization(id string) *atollv1.Organization {
	return first[*atollv1.Organization](t, TableOrganizations, "id", id)
}

// OrganizationBySlug, or nil.
func (t *Txn) OrganizationBySlug(slug string) *atollv1.Organization {
	return first[*atollv1.Organization](t, TableOrganizations, "slug", slug)
}

// Organizations lists every organization.
func (t *Txn) Organizations() []*atollv1.Organization {
	return all[*atollv1.Organization](t, TableOrganizations, "id")
}

// Project by id, or nil.
func (t *Txn) Project(id string) *atollv1.Project {
	return first[*atollv1.Project](t, TableProjects, "id", id)
}

// Projects of an organization.
func (t *Txn) Projects(orgID string) []*atollv1.Project {
	return all[*atollv1.Project](t, TableProjects, "org", orgID)
}

// Environment by id (deleted ones included), or nil.
func (t *Txn) Environment(id string) *atollv1.Environment {
	return first[*atollv1.Environment](t, TableEnvironments, "id", id)
}

// Environments of an organization (deleted ones included).
func (t *Txn) Environments(orgID string) []*atollv1.Environment {
	return all[*atollv1.Environment](t, TableEnvironments, "handle_prefix", handleName, orgID)
}

// ProjectEnvironments lists the environments of a project (deleted ones
// included); none for a project that does not exist (any more).
func (t *Txn) ProjectEnvironments(projectID string) []*atollv1.Environment {
	p := t.Project(projectID)
	if p == nil {
		return nil
	}
	return all[*atollv1.Environment](t, TableEnvironments, "handle_prefix", handleName, p.OrgId, projectID)
}

// LiveEnvironmentByName finds a not-deleted environment of a project by name (case-insensitive).
func (t *Txn) LiveEnvironmentByName(projectID, name string) *atollv1.Environment {
	p := t.Project(projectID)
	if p == nil {
		return nil
	}
	for _, e := range all[*atollv1.Environment](t, TableEnvironments, "handle", handleName, p.OrgId, projectID, strings.ToLower(name)) {
		if !e.IsDeleted {
			return e
		}
	}
	return nil
}

// LiveEnvironmentBySlug finds a not-deleted environment of a project by slug.
func (t *Txn) LiveEnvironmentBySlug(projectID, slug string) *atollv1.Environment {
	for _, e := range all[*atollv1.Environment](t, TableEnvironments, "handle", handleSlug, projectID, slug) {
		if !e.IsDeleted {
			return e
		}
	}
	return nil
}

// EnvironmentVersions lists an environment's history, oldest first.
func (t *Txn) EnvironmentVersions(envID string) []*atollv1.EnvironmentVersion {
	vs := all[*EnvVersion](t, TableEnvVersions, "id_prefix", envID)
	out := make([]*atollv1.EnvironmentVersion, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Entry)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// EnvironmentVersion returns one version of an environment's history, or nil.
func (t *Txn) EnvironmentVersion(envID string, version int) *atollv1.EnvironmentVersion {
	if v := first[*EnvVersion](t, TableEnvVersions, "id", envID, version); v != nil {
		return v.Entry
	}
	return nil
}

// TokenByHash finds a token by the hex SHA-256 of its secret, or nil.
func (t *Txn) TokenByHash(hash string) *atollv1.Token {
	return first[*atollv1.Token](t, TableTokens, "hash", hash)
}

// Token by id, or nil.
func (t *Txn) Token(id string) *atollv1.Token {
	return first[*atollv1.Token](t, TableTokens, "id", id)
}

// Tokens of an organization.
func (t *Txn) Tokens(orgID string) []*atollv1.Token {
	return all[*atollv1.Token](t, TableTokens, "org", orgID)
}

// Servers lists the control-plane servers known to the cluster.
func (t *Txn) Servers() []*atollv1.ServerMember {
	return all[*atollv1.ServerMember](t, TableServers, "id")
}

// Server by id, or nil.
func (t *Txn) Server(id string) *atollv1.ServerMember {
	return first[*atollv1.ServerMember](t, TableServers, "id", id)
}

// EventsAfter returns the retained events with a raft index above index, and
// a channel closed when new events arrive. dropped is the newest index lost
// to the bound of the log: a caller with index < dropped has missed events.
func (t *Txn) EventsAfter(index uint64) (events []*atollv1.Event, dropped uint64, watch <-chan struct{}) {
	// Newest first, stopping at the first old one: a caller that is nearly
	// up to date reads only what it has not seen.
	it, err := t.tx.GetReverse(TableEvents, "id")
	if err != nil {
		return nil, 0, nil
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		ev := raw.(*EventRecord).Event
		if ev.Index <= index {
			break
		}
		events = append(events, ev)
	}
	slices.Reverse(events)
	return events, t.Meta(MetaEventsDropped), it.WatchCh()
}

// AppendEvent adds an event to the log. Beyond the limit the oldest events
// are dropped, an eighth of the limit at a time: consecutive entries removed
// in one transaction share the tree nodes they copy, which costs far less
// than one removal per append.
func (t *Txn) AppendEvent(ev *atollv1.Event) error {
	seq := uint64(1)
	if last, err := t.tx.Last(TableEvents, "id"); err == nil && last != nil {
		seq = last.(*EventRecord).Seq + 1
	}
	if err := t.tx.Insert(TableEvents, &EventRecord{Seq: seq, Event: ev}); err != nil {
		return err
	}
	limit := uint64(t.store.eventLimit)
	oldest, err := t.tx.First(TableEvents, "id")
	if err != nil || oldest == nil || seq-oldest.(*EventRecord).Seq+1 <= limit+max(1, limit/8) {
		return err
	}
	var drop []*EventRecord
	it, err := t.tx.Get(TableEvents, "id")
	if err != nil {
		return err
	}
	for raw := it.Next(); raw != nil && raw.(*EventRecord).Seq <= seq-limit; raw = it.Next() {
		drop = append(drop, raw.(*EventRecord))
	}
	for _, r := range drop {
		if err := t.tx.Delete(TableEvents, r); err != nil {
			return err
		}
	}
	if len(drop) == 0 {
		return nil
	}
	return t.SetMeta(MetaEventsDropped, drop[len(drop)-1].Event.Index)
}

// InsertEnvironmentVersion records one version of an environment's history.
func (t *Txn) InsertEnvironmentVersion(v *atollv1.EnvironmentVersion) error {
	return t.tx.Insert(TableEnvVersions, &EnvVersion{EnvID: v.GetEnvironment().GetId(), Version: int(v.Version), Entry: v})
}

// EnvTables lists, in snapshot order, the tables whose rows belong to one
// environment: those with an "env" index (apps, instances, volumes,
// variable sets, files, deployments). A new table with an "env" index is
// purged with its environment without further change.
var EnvTables = func() []string {
	s := schema()
	var out []string
	for _, name := range Tables {
		if _, ok := s.Tables[name].Indexes["env"]; ok {
			out = append(out, name)
		}
	}
	return out
}()

// DeleteEnvironmentObjects removes every row that belongs to an environment
// (EnvTables) and its version history, leaving the environment itself.
// It returns how many rows went, per table.
func (t *Txn) DeleteEnvironmentObjects(envID string) (map[string]int, error) {
	out := map[string]int{}
	for _, table := range EnvTables {
		n, err := t.tx.DeleteAll(table, "env", envID)
		if err != nil {
			return nil, err
		}
		out[table] = n
	}
	n, err := t.tx.DeleteAll(TableEnvVersions, "id_prefix", envID)
	if err != nil {
		return nil, err
	}
	out[TableEnvVersions] = n
	return out, nil
}
