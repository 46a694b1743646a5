package state

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Snapshot format: a magic header, then records of
//
//	uvarint table number (index in Tables) | uvarint length | payload
//
// in table order, each table in id order, so the same state always gives the
// same bytes (that is what Hash relies on).
const snapshotMagic = "ATOLLSNAP1\n"

// ErrBadSnapshot is returned for data that is not an atoll snapshot.
var ErrBadSnapshot = errors.New("state: not a valid atoll snapshot")

var marshal = proto.MarshalOptions{Deterministic: true}

// Persist writes the whole state of this transaction to w.
func (t *Txn) Persist(w io.Writer) error {
	return t.persist(w, false)
}

// Hash is the SHA-256 of the serialized state, without the applied index
// (which differs between clusters that hold the same state).
func (t *Txn) Hash() (string, error) {
	h := sha256.New()
	if err := t.persist(h, true); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (t *Txn) persist(out io.Writer, forHash bool) error {
	w := bufio.NewWriterSize(out, 64<<10)
	if _, err := w.WriteString(snapshotMagic); err != nil {
		return err
	}
	var hdr [2 * binary.MaxVarintLen64]byte
	for num, table := range Tables {
		if forHash && table == TableServers {
			continue // cluster membership differs between clusters holding the same data
		}
		it, err := t.tx.Get(table, "id")
		if err != nil {
			return fmt.Errorf("state: read %s: %w", table, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if m, ok := raw.(*Meta); ok && forHash && m.Key == MetaAppliedIndex {
				continue
			}
			payload, err := encodeObject(raw)
			if err != nil {
				return fmt.Errorf("state: encode %s: %w", table, err)
			}
			n := binary.PutUvarint(hdr[:], uint64(num))
			n += binary.PutUvarint(hdr[n:], uint64(len(payload)))
			if _, err := w.Write(hdr[:n]); err != nil {
				return err
			}
			if _, err := w.Write(payload); err != nil {
				return err
			}
		}
	}
	return w.Flush()
}

func encodeObject(raw any) ([]byte, error) {
	switch o := raw.(type) {
	case *Meta:
		b := binary.AppendUvarint(nil, o.Value)
		return append(b, o.Key...), nil
	case *EnvVersion:
		return marshal.Marshal(o.Entry)
	case *EventRecord:
		b := binary.AppendUvarint(nil, o.Seq)
		ev, err := marshal.Marshal(o.Event)
		return append(b, ev...), err
	case proto.Message:
		return marshal.Marshal(o)
	}
	return nil, fmt.Errorf("unknown object type %T", raw)
}

func decodeObject(table string, b []byte) (any, error) {
	switch table {
	case TableMeta:
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, ErrBadSnapshot
		}
		return &Meta{Key: string(b[n:]), Value: v}, nil
	case TableEnvVersions:
		e := &atollv1.EnvironmentVersion{}
		if err := proto.Unmarshal(b, e); err != nil {
			return nil, err
		}
		return &EnvVersion{EnvID: e.GetEnvironment().GetId(), Version: int(e.Version), Entry: e}, nil
	case TableEvents:
		seq, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, ErrBadSnapshot
		}
		ev := &atollv1.Event{}
		if err := proto.Unmarshal(b[n:], ev); err != nil {
			return nil, err
		}
		return &EventRecord{Seq: seq, Event: ev}, nil
	}
	var m proto.Message
	switch table {
	case TableServers:
		m = &atollv1.ServerMember{}
	case TableOrganizations:
		m = &atollv1.Organization{}
	case TableProjects:
		m = &atollv1.Project{}
	case TableTokens:
		m = &atollv1.Token{}
	case TableEnvironments:
		m = &atollv1.Environment{}
	case TableNodes:
		m = &atollv1.Node{}
	case TableApps:
		m = &atollv1.App{}
	case TableInstances:
		m = &atollv1.Instance{}
	case TableVolumes:
		m = &atollv1.Volume{}
	case TableVariableSets:
		m = &atollv1.VariableSet{}
	case TableFiles:
		m = &atollv1.File{}
	case TableReleases:
		m = &atollv1.Release{}
	case TableDeployments:
		m = &atollv1.Deployment{}
	case TableBlueprints:
		m = &atollv1.Blueprint{}
	case TableAppSpecs:
		m = &atollv1.AppSpec{}
	case TableVarSetVersions:
		m = &atollv1.VariableSetVersion{}
	case TableFileVersions:
		m = &atollv1.FileVersion{}
	default:
		return nil, fmt.Errorf("%w: unknown table %q", ErrBadSnapshot, table)
	}
	return m, proto.Unmarshal(b, m)
}

// Restore reads a snapshot written by Persist into a new store.
func Restore(r io.Reader, eventLimit int) (*Store, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return nil, ErrBadSnapshot
	}
	s := New(eventLimit)
	tx := s.db.Txn(true)
	defer tx.Abort()
	for {
		num, err := binary.ReadUvarint(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		size, err := binary.ReadUvarint(br)
		if err != nil || num >= uint64(len(Tables)) || size > 64<<20 {
			return nil, fmt.Errorf("%w: bad record header", ErrBadSnapshot)
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, fmt.Errorf("%w: truncated record: %v", ErrBadSnapshot, err)
		}
		table := Tables[num]
		obj, err := decodeObject(table, buf)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadSnapshot, table, err)
		}
		if err := tx.Insert(table, obj); err != nil {
			return nil, fmt.Errorf("state: restore %s: %w", table, err)
		}
	}
	tx.Commit()
	return s, nil
}
