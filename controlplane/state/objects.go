package state

import (
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Meta is a key/value of the state machine's own bookkeeping.
type Meta struct {
	Key   string
	Value uint64
}

// Meta keys.
const (
	MetaAppliedIndex = "applied_index"
	// MetaEventsDropped is the raft index of the newest event dropped from the
	// bounded event log: a watch from an older index has missed events.
	MetaEventsDropped = "events_dropped_index"
)

// EnvVersion is one stored version of an environment (its history).
type EnvVersion struct {
	EnvID   string
	Version int
	Entry   *atollv1.EnvironmentVersion
}

// EventRecord is one event of the bounded event log.
type EventRecord struct {
	Seq   uint64
	Event *atollv1.Event
}
