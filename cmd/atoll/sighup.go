package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// reloadOnHUP calls reload on each SIGHUP until ctx is done or the
// returned stop is called (atoll server and atoll agent with TLS: reload
// the certificate files; reload logs its own failures and the process keeps
// the previous certificates).
func reloadOnHUP(ctx context.Context, reload func() error) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				_ = reload()
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		cancel()
		<-done
	}
}
