package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/runtime"
)

// TestLabel is the label key that scopes the containers and volumes of one
// test: NewTestRuntime's cleanup removes everything carrying its value.
const TestLabel = "atoll.test"

// NewTestRuntime returns a Runtime on the local engine for tests, with
// files under t.TempDir(), and a unique value for TestLabel. Everything the
// test creates with the label TestLabel=value (containers first, then probe
// containers, then volumes) is removed when the test ends, so parallel tests and packages do
// not collide and leave nothing behind.
func NewTestRuntime(t testing.TB) (*Runtime, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.FilesDir = t.TempDir()
	cfg.PullTimeout = 15 * time.Second
	cfg.PullStallTimeout = 5 * time.Second
	cfg.StatsSampleInterval = 200 * time.Millisecond
	rt, err := New(cfg)
	if err != nil {
		t.Fatalf("docker runtime: %v", err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	value := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	if len(value) > 40 {
		value = value[:40]
	}
	value += "-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sel := map[string]string{TestLabel: value}
		cs, err := rt.List(ctx, sel)
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, c := range cs {
			if err := rt.Remove(ctx, c.ID); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if _, err := rt.RemoveStaleProbes(ctx, sel); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		vs, err := rt.ListVolumes(ctx, sel)
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, v := range vs {
			if err := rt.RemoveVolume(ctx, v.Name); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		rt.Close()
	})
	return rt, value
}

// TestSpec returns a spec for a test container labelled with TestLabel.
func TestSpec(name, image, testValue string) runtime.ContainerSpec {
	return runtime.ContainerSpec{
		Name:   name,
		Image:  image,
		Labels: map[string]string{TestLabel: testValue},
	}
}
