// Package fsm is the raft state machine: it decodes each committed Command
// and applies it to the state store through one applyXxx function per
// command. Every applyXxx checks everything first and writes last, so a
// refused command leaves no trace even when it shares a batch transaction
// with others. The FSM is deterministic: ids, times and the actor travel in
// the command.
package fsm

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Result is what Apply returns for a command log entry.
type Result struct {
	Index uint64
	Value proto.Message // the created/updated object, if any
	Err   error         // a gRPC status error when the command was refused
}

// ErrUnknownCommand is returned for a log entry this version cannot decode.
var ErrUnknownCommand = errors.New("fsm: unknown command")

// Observer receives apply timings (metrics). May be nil.
type Observer interface {
	ObserveApply(kind string, d time.Duration, err error)
}

// FSM implements raft.FSM and raft.BatchingFSM.
type FSM struct {
	mu         sync.RWMutex
	store      *state.Store
	restored   chan struct{} // closed and replaced when Restore swaps the store
	eventLimit int
	log        *slog.Logger
	obs        Observer
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// New returns an FSM over an empty store keeping eventLimit events.
func New(eventLimit int, log *slog.Logger, obs Observer) *FSM {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FSM{store: state.New(eventLimit), restored: make(chan struct{}), eventLimit: eventLimit, log: log, obs: obs}
}

// State returns the current store and a channel closed if it is replaced by a
// snapshot restore (watchers must then re-read from State()).
func (f *FSM) State() (*state.Store, <-chan struct{}) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.store, f.restored
}

// Snapshot returns a read view of the current state.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	s, _ := f.State()
	return &snapshot{tx: s.Snapshot()}, nil
}

// Restore replaces the state with a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := state.Restore(rc, f.eventLimit)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.store = s
	close(f.restored)
	f.restored = make(chan struct{})
	f.mu.Unlock()
	f.log.Info("state restored from snapshot", "applied_index", s.Snapshot().AppliedIndex())
	return nil
}

// Apply applies one log entry.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in one store transaction.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	s, _ := f.State()
	tx := s.WriteTxn()
	out := make([]any, len(logs))
	var last uint64
	for i, l := range logs {
		last = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		out[i] = f.applyOne(tx, l)
	}
	if last > 0 {
		if err := tx.SetMeta(state.MetaAppliedIndex, last); err != nil {
			f.log.Error("fsm: record applied index", "err", err)
		}
	}
	tx.Commit()
	return out
}

func (f *FSM) applyOne(tx *state.Txn, l *raft.Log) *Result {
	start := time.Now()
	cmd := &atollv1.Command{}
	if err := proto.Unmarshal(l.Data, cmd); err != nil {
		f.log.Error("fsm: undecodable command", "index", l.Index, "err", err)
		return &Result{Index: l.Index, Err: fmt.Errorf("%w: %v", ErrUnknownCommand, err)}
	}
	a := &applier{tx: tx, index: l.Index, cmd: cmd, time: cmd.GetTime().AsTime().UTC()}
	kind, val, err := a.dispatch()
	if err == nil {
		err = a.pruneTouchedSpecs()
	}
	if err == nil {
		err = a.pruneTouchedContent()
	}
	if f.obs != nil {
		f.obs.ObserveApply(kind, time.Since(start), err)
	}
	return &Result{Index: l.Index, Value: val, Err: err}
}

type snapshot struct{ tx *state.Txn }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.tx.Persist(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
