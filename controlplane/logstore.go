package controlplane

import (
	"errors"
	"sync"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// errStoreClosed is returned by reads after the server closed its raft log.
var errStoreClosed = errors.New("raft log store is closed")

// guardedStore wraps the bolt log/stable store so that a raft heartbeat
// still being handled on a transport connection while the server shuts
// down cannot hit a closed database: hashicorp/raft panics when it cannot
// persist a term. After Close, writes are dropped (raft is shut down; what
// is on disk is the state the server restarts from) and reads fail.
type guardedStore struct {
	mu     sync.RWMutex
	closed bool
	s      *raftboltdb.BoltStore
}

var (
	_ raft.LogStore    = (*guardedStore)(nil)
	_ raft.StableStore = (*guardedStore)(nil)
)

func (g *guardedStore) read(f func() error) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return errStoreClosed
	}
	return f()
}

func (g *guardedStore) write(f func() error) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return nil
	}
	return f()
}

// Close closes the underlying store once no call is in flight.
func (g *guardedStore) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	return g.s.Close()
}

func (g *guardedStore) FirstIndex() (i uint64, err error) {
	err = g.read(func() (e error) { i, e = g.s.FirstIndex(); return })
	return
}

func (g *guardedStore) LastIndex() (i uint64, err error) {
	err = g.read(func() (e error) { i, e = g.s.LastIndex(); return })
	return
}

func (g *guardedStore) GetLog(index uint64, log *raft.Log) error {
	return g.read(func() error { return g.s.GetLog(index, log) })
}

func (g *guardedStore) StoreLog(log *raft.Log) error {
	return g.write(func() error { return g.s.StoreLog(log) })
}

func (g *guardedStore) StoreLogs(logs []*raft.Log) error {
	return g.write(func() error { return g.s.StoreLogs(logs) })
}

func (g *guardedStore) DeleteRange(min, max uint64) error {
	return g.write(func() error { return g.s.DeleteRange(min, max) })
}

func (g *guardedStore) Set(k, v []byte) error {
	return g.write(func() error { return g.s.Set(k, v) })
}

func (g *guardedStore) Get(k []byte) (v []byte, err error) {
	err = g.read(func() (e error) { v, e = g.s.Get(k); return })
	return
}

func (g *guardedStore) SetUint64(k []byte, v uint64) error {
	return g.write(func() error { return g.s.SetUint64(k, v) })
}

func (g *guardedStore) GetUint64(k []byte) (v uint64, err error) {
	err = g.read(func() (e error) { v, e = g.s.GetUint64(k); return })
	return
}
