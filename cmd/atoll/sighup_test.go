//go:build unix

package main

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestTLSReloadOnSIGHUP: reloadOnHUP calls reload on SIGHUP (sent to this
// test process only while the handler is registered).
func TestTLSReloadOnSIGHUP(t *testing.T) {
	called := make(chan struct{}, 1)
	stop := reloadOnHUP(context.Background(), func() error {
		select {
		case called <- struct{}{}:
		default:
		}
		return nil
	})
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGHUP did not call reload")
	}
}
