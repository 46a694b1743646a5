package controlplane_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/atollhq/atoll/controlplane/cptest"
)

// Joining servers receive the cluster's keyring, so any of them can open
// sealed secrets once it leads; a restarted one keeps it.
func TestJoinedServersShareTheKeyring(t *testing.T) {
	c := cptest.NewCluster(t, 3)
	key := c.Servers[0].ClusterKey()
	if len(key) != 32 {
		t.Fatalf("bootstrap key: %d bytes", len(key))
	}
	for _, s := range c.Servers[1:] {
		cptest.WaitFor(t, 10*time.Second, "keyring installed", func() bool { return bytes.Equal(s.ClusterKey(), key) })
	}
	c.Kill(2)
	s := c.Restart(2)
	if !bytes.Equal(s.ClusterKey(), key) {
		t.Fatal("restarted server lost the keyring")
	}
}
