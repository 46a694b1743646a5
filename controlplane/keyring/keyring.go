// Package keyring keeps the cluster key that encrypts secret values (secret
// variables) before they enter the raft log, so neither the log, the
// snapshots nor an `operator snapshot save` file holds them in clear. The
// key lives in each server's data dir (0600); a joining server receives it
// from the cluster over its authenticated join call. Keep a copy of the
// keyring with snapshot backups: a snapshot restored into a cluster with
// another key keeps its secrets unreadable.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Prefix marks an encrypted value.
const Prefix = "enc:v1:"

// FileName is the keyring file in a server's data dir.
const FileName = "keyring"

// Errors.
var (
	ErrNoKey     = errors.New("keyring: no key yet (the server has not joined a cluster)")
	ErrBadSecret = errors.New("keyring: value cannot be decrypted with this cluster's key")
)

// Keyring holds the key; safe for concurrent use.
type Keyring struct {
	mu   sync.RWMutex
	path string
	aead cipher.AEAD
	raw  []byte
}

// Open loads the keyring of a data dir; with create, a missing one is
// generated (a bootstrapping server).
func Open(dataDir string, create bool) (*Keyring, error) {
	k := &Keyring{path: filepath.Join(dataDir, FileName)}
	b, err := os.ReadFile(k.path)
	switch {
	case err == nil:
		return k, k.set(b, false)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("keyring: %w", err)
	case create:
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		return k, k.set(key, true)
	}
	return k, nil // filled later by Install (join)
}

// Install sets the key received from the cluster and saves it.
func (k *Keyring) Install(key []byte) error { return k.set(key, true) }

func (k *Keyring) set(key []byte, save bool) error {
	if len(key) != 32 {
		return fmt.Errorf("keyring: key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	if save {
		if err := os.WriteFile(k.path, key, 0o600); err != nil {
			return fmt.Errorf("keyring: save: %w", err)
		}
	}
	k.mu.Lock()
	k.aead, k.raw = aead, append([]byte(nil), key...)
	k.mu.Unlock()
	return nil
}

// Key returns the raw key (for a joining server), or nil.
func (k *Keyring) Key() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return append([]byte(nil), k.raw...)
}

// Seal encrypts a value.
func (k *Keyring) Seal(plain string) (string, error) {
	k.mu.RLock()
	aead := k.aead
	k.mu.RUnlock()
	if aead == nil {
		return "", ErrNoKey
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := aead.Seal(nonce, nonce, []byte(plain), nil)
	return Prefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a sealed value; a value without the prefix is returned as is.
func (k *Keyring) Open(v string) (string, error) {
	enc, ok := strings.CutPrefix(v, Prefix)
	if !ok {
		return v, nil
	}
	k.mu.RLock()
	aead := k.aead
	k.mu.RUnlock()
	if aead == nil {
		return "", ErrNoKey
	}
	b, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil || len(b) < aead.NonceSize() {
		return "", ErrBadSecret
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], nil)
	if err != nil {
		return "", ErrBadSecret
	}
	return string(plain), nil
}
