package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/atollhq/atoll/runtime"
)

// Exec runs cmd in the running container, as the container's user, and
// returns its exit code and output (each stream capped at
// Config.ExecOutputLimit bytes; the rest is read and dropped).
func (r *Runtime) Exec(ctx context.Context, id string, cmd []string) (runtime.ExecResult, error) {
	if len(cmd) == 0 {
		return runtime.ExecResult{}, fmt.Errorf("%w: exec needs a command", runtime.ErrInvalidSpec)
	}
	created, err := r.cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return runtime.ExecResult{}, containerErr("exec", id, err)
	}
	hj, err := r.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return runtime.ExecResult{}, containerErr("exec", id, err)
	}
	defer hj.Close()
	stop := context.AfterFunc(ctx, func() { hj.Close() })
	defer stop()
	var stdout, stderr bytes.Buffer
	limit := r.cfg.ExecOutputLimit
	if _, err := stdcopy.StdCopy(&cappedWriter{&stdout, limit}, &cappedWriter{&stderr, limit}, hj.Reader); err != nil && ctx.Err() == nil {
		return runtime.ExecResult{}, fmt.Errorf("exec %s: reading output: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return runtime.ExecResult{}, err
	}
	// The output ends a moment before the engine records the exit code.
	for {
		ins, err := r.cli.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return runtime.ExecResult{}, containerErr("exec", id, err)
		}
		if !ins.Running {
			return runtime.ExecResult{ExitCode: ins.ExitCode, Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}, nil
		}
		select {
		case <-ctx.Done():
			return runtime.ExecResult{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// cappedWriter keeps the first n bytes and accepts (drops) the rest, so a
// chatty command cannot exhaust the agent's memory.
type cappedWriter struct {
	buf *bytes.Buffer
	n   int
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if room := w.n - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

var _ io.Writer = (*cappedWriter)(nil)
