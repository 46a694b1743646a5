package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"

	"github.com/atollhq/atoll/runtime"
)

// EnsureImage returns at once when ref is on this host, and otherwise pulls
// it. The pull is abandoned when the engine reports no progress for
// Config.PullStallTimeout, and in any case after Config.PullTimeout (or at
// the context's deadline, if sooner): a large image may take minutes, a
// stuck registry never holds the agent for long.
func (r *Runtime) EnsureImage(ctx context.Context, ref string) error {
	if ref == "" {
		return fmt.Errorf("%w: empty image reference", runtime.ErrInvalidSpec)
	}
	if _, err := r.cli.ImageInspect(ctx, ref); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %q: %w", ref, err)
	}
	pullCtx, cancel := context.WithTimeoutCause(ctx, r.cfg.PullTimeout, fmt.Errorf("pull timed out after %v", r.cfg.PullTimeout))
	defer cancel()
	stallCtx, stalled := context.WithCancelCause(pullCtx)
	defer stalled(nil)
	watchdog := time.AfterFunc(r.cfg.PullStallTimeout, func() {
		stalled(fmt.Errorf("pull made no progress for %v", r.cfg.PullStallTimeout))
	})
	defer watchdog.Stop()
	progress := func() { watchdog.Reset(r.cfg.PullStallTimeout) }
	if err := r.pull(stallCtx, ref, progress); err != nil {
		if ctx.Err() != nil { // the caller gave up: not the image's fault
			return fmt.Errorf("pull image %q: %w", ref, ctx.Err())
		}
		if cause := context.Cause(stallCtx); cause != nil {
			err = cause
		}
		return runtime.ImageNotFound(ref, err)
	}
	if _, err := r.cli.ImageInspect(ctx, ref); err != nil {
		return runtime.ImageNotFound(ref, fmt.Errorf("pull finished but the image is not there: %w", err))
	}
	return nil
}

// pull pulls ref and reads the progress stream to its end, returning the
// error the stream reports (the API answers 200 and reports failures inside).
// progress is called for every message.
func (r *Runtime) pull(ctx context.Context, ref string, progress func()) error {
	rc, err := r.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	// A stalled body does not notice the context by itself.
	stop := context.AfterFunc(ctx, func() { rc.Close() })
	defer stop()
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading pull progress: %w", err)
		}
		progress()
		if m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}
