package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"

	"github.com/atollhq/atoll/runtime"
)

// EnsureImage returns at once when ref is on this host, and otherwise pulls
// it within Config.PullTimeout (or the context's deadline, if sooner).
func (r *Runtime) EnsureImage(ctx context.Context, ref string) error {
	if ref == "" {
		return fmt.Errorf("%w: empty image reference", runtime.ErrInvalidSpec)
	}
	if _, err := r.cli.ImageInspect(ctx, ref); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %q: %w", ref, err)
	}
	pullCtx, cancel := context.WithTimeout(ctx, r.cfg.PullTimeout)
	defer cancel()
	if err := r.pull(pullCtx, ref); err != nil {
		if ctx.Err() != nil { // the caller gave up: not the image's fault
			return fmt.Errorf("pull image %q: %w", ref, ctx.Err())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("pull timed out after %v", r.cfg.PullTimeout)
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
func (r *Runtime) pull(ctx context.Context, ref string) error {
	rc, err := r.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reading pull progress: %w", err)
		}
		if m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}
