package state

import (
	"encoding/binary"
	"fmt"
	"strings"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Indexers for the hot tables. go-memdb's field indexers find the field by
// reflection and allocate on every insert and lookup; these read the field
// through a plain function. Index values end in a 0 byte, like memdb's string
// indexes, so that one value is never a prefix of another.

// strIndex indexes one string of an object.
type strIndex struct {
	get func(obj any) (string, bool)
}

func (x strIndex) FromObject(obj any) (bool, []byte, error) {
	v, ok := x.get(obj)
	if !ok {
		return false, nil, fmt.Errorf("state: object of type %T has no value for this index", obj)
	}
	if v == "" {
		return false, nil, nil
	}
	return true, terminated(v), nil
}

func (x strIndex) FromArgs(args ...any) ([]byte, error) {
	s, err := oneString(args)
	if err != nil {
		return nil, err
	}
	return terminated(s), nil
}

func (x strIndex) PrefixFromArgs(args ...any) ([]byte, error) {
	s, err := oneString(args)
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

func oneString(args []any) (string, error) {
	if len(args) != 1 {
		return "", fmt.Errorf("state: index takes one argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return "", fmt.Errorf("state: index argument must be a string, got %T", args[0])
	}
	return s, nil
}

func terminated(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
		b = append(b, 0)
	}
	return b
}

// byID indexes a protobuf object by its Id.
var byID = strIndex{get: func(obj any) (string, bool) {
	o, ok := obj.(interface{ GetId() string })
	if !ok {
		return "", false
	}
	return o.GetId(), true
}}

// envHandles is the one secondary index of environments (a multi-value
// index, so an insert touches one tree instead of one per lookup): every
// environment has an entry under its organization, project and name
// (lowercase), and one under its project and slug. Prefixes of the first
// list an organization's or a project's environments.
//
//	Get(TableEnvironments, "handle", handleName, orgID, projectID, lowercaseName)
//	Get(TableEnvironments, "handle", handleSlug, projectID, slug)
//	Get(TableEnvironments, "handle_prefix", handleName, orgID)             // an organization's
//	Get(TableEnvironments, "handle_prefix", handleName, orgID, projectID)  // a project's
type envHandles struct{}

const (
	handleName = "n"
	handleSlug = "s"
)

func (envHandles) FromObject(obj any) (bool, [][]byte, error) {
	e, ok := obj.(*atollv1.Environment)
	if !ok {
		return false, nil, fmt.Errorf("state: environments index got a %T", obj)
	}
	return true, [][]byte{
		terminated(handleName, e.OrgId, e.ProjectId, strings.ToLower(e.Name)),
		terminated(handleSlug, e.ProjectId, e.Slug),
	}, nil
}

func (envHandles) FromArgs(args ...any) ([]byte, error) {
	parts, err := strArgs(args)
	if err != nil {
		return nil, err
	}
	return terminated(parts...), nil
}

func (envHandles) PrefixFromArgs(args ...any) ([]byte, error) {
	return envHandles{}.FromArgs(args...)
}

func strArgs(args []any) ([]string, error) {
	out := make([]string, len(args))
	for i, a := range args {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("state: index argument %d must be a string, got %T", i, a)
		}
		out[i] = s
	}
	return out, nil
}

// envVersionID indexes history entries by environment id, then version
// (big-endian, so a prefix scan returns them oldest first).
type envVersionID struct{}

func (envVersionID) FromObject(obj any) (bool, []byte, error) {
	v, ok := obj.(*EnvVersion)
	if !ok {
		return false, nil, fmt.Errorf("state: environment versions index got a %T", obj)
	}
	return true, binary.BigEndian.AppendUint64(terminated(v.EnvID), uint64(v.Version)), nil
}

func (envVersionID) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("state: environment versions index takes (envID, version), got %d arguments", len(args))
	}
	id, ok := args[0].(string)
	ver, ok2 := args[1].(int)
	if !ok || !ok2 {
		return nil, fmt.Errorf("state: environment versions index takes (string, int), got (%T, %T)", args[0], args[1])
	}
	return binary.BigEndian.AppendUint64(terminated(id), uint64(ver)), nil
}

func (envVersionID) PrefixFromArgs(args ...any) ([]byte, error) {
	id, err := oneString(args)
	if err != nil {
		return nil, err
	}
	return terminated(id), nil
}

// eventSeq indexes the event log by sequence number, as 16 hex digits: in
// order, and with at most 16 edges per tree node, so an append copies a few
// small nodes (big-endian bytes made the last two levels 256 wide).
type eventSeq struct{}

func seqKey(seq uint64) []byte {
	const hexdigits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = hexdigits[seq&0xf]
		seq >>= 4
	}
	return b[:]
}

func (eventSeq) FromObject(obj any) (bool, []byte, error) {
	r, ok := obj.(*EventRecord)
	if !ok {
		return false, nil, fmt.Errorf("state: events index got a %T", obj)
	}
	return true, seqKey(r.Seq), nil
}

func (eventSeq) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("state: events index takes one argument, got %d", len(args))
	}
	seq, ok := args[0].(uint64)
	if !ok {
		return nil, fmt.Errorf("state: events index argument must be a uint64, got %T", args[0])
	}
	return seqKey(seq), nil
}

// metaKey indexes bookkeeping values by key.
var metaKey = strIndex{get: func(obj any) (string, bool) {
	m, ok := obj.(*Meta)
	if !ok {
		return "", false
	}
	return m.Key, true
}}
