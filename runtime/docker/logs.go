package docker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/atollhq/atoll/runtime"
)

// Logs streams the container's stdout and stderr as timestamped lines.
func (r *Runtime) Logs(ctx context.Context, id string, opts runtime.LogOptions) (runtime.LogStream, error) {
	c, err := r.cli.ContainerInspect(ctx, id)
	if err != nil {
		return nil, containerErr("logs", id, err)
	}
	lo := container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: opts.Follow, Tail: "all"}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		lo.Since = fmt.Sprintf("%d.%09d", opts.Since.Unix(), opts.Since.Nanosecond())
	}
	rc, err := r.cli.ContainerLogs(ctx, c.ID, lo)
	if err != nil {
		return nil, containerErr("logs", id, err)
	}
	tty := c.Config != nil && c.Config.Tty
	return newLogStream(ctx, rc, tty), nil
}

// logStream turns the engine's multiplexed log stream into lines. Each
// frame is an 8-byte header (stream, 3 zero bytes, big-endian length) and
// a payload; with timestamps on, a payload is "RFC3339Nano text\n". A
// payload without its newline (a partial message) is joined with the next
// frame of the same stream. A TTY container's stream has no frames.
type logStream struct {
	ctx     context.Context
	rc      io.ReadCloser
	br      *bufio.Reader
	tty     bool
	pending []runtime.LogLine
	partial map[runtime.Stream]*runtime.LogLine
	err     error
}

func newLogStream(ctx context.Context, rc io.ReadCloser, tty bool) *logStream {
	return &logStream{
		ctx:     ctx,
		rc:      rc,
		br:      bufio.NewReaderSize(rc, 64<<10),
		tty:     tty,
		partial: map[runtime.Stream]*runtime.LogLine{},
	}
}

// maxFrame bounds one frame's payload; the engine splits lines at 16 KiB.
const maxFrame = 1 << 20

func (s *logStream) Next() (runtime.LogLine, error) {
	for len(s.pending) == 0 {
		if s.err != nil {
			return runtime.LogLine{}, s.err
		}
		s.readFrame()
	}
	l := s.pending[0]
	s.pending = s.pending[1:]
	return l, nil
}

func (s *logStream) Close() error { return s.rc.Close() }

// readFrame reads one frame (or, for a TTY, one line) into pending, or
// sets err.
func (s *logStream) readFrame() {
	var (
		stream  = runtime.Stdout
		payload []byte
		err     error
	)
	if s.tty {
		payload, err = s.br.ReadBytes('\n')
		if len(payload) == 0 && err != nil {
			s.fail(err)
			return
		}
	} else {
		var hdr [8]byte
		if _, err := io.ReadFull(s.br, hdr[:]); err != nil {
			s.fail(err)
			return
		}
		switch hdr[0] {
		case 1:
			stream = runtime.Stdout
		case 2:
			stream = runtime.Stderr
		default:
			s.fail(fmt.Errorf("log stream: unexpected stream id %d", hdr[0]))
			return
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		if n > maxFrame {
			s.fail(fmt.Errorf("log stream: frame of %d bytes", n))
			return
		}
		payload = make([]byte, n)
		if _, err := io.ReadFull(s.br, payload); err != nil {
			s.fail(err)
			return
		}
	}
	s.addPayload(stream, string(payload))
}

// addPayload splits one payload into lines, each starting with a timestamp.
func (s *logStream) addPayload(stream runtime.Stream, p string) {
	ts, text := splitTimestamp(p)
	for {
		line, rest, complete := strings.Cut(text, "\n")
		if pl := s.partial[stream]; pl != nil {
			pl.Text += line
			if !complete {
				return
			}
			delete(s.partial, stream)
			s.emit(*pl)
		} else if complete {
			s.emit(runtime.LogLine{Time: ts, Stream: stream, Text: line})
		} else {
			if line != "" {
				s.partial[stream] = &runtime.LogLine{Time: ts, Stream: stream, Text: line}
			}
			return
		}
		if rest == "" {
			return
		}
		text = rest
	}
}

func (s *logStream) emit(l runtime.LogLine) {
	l.Text = strings.TrimSuffix(l.Text, "\r")
	s.pending = append(s.pending, l)
}

// fail ends the stream: partial lines are flushed first, a clean end is
// io.EOF, and a read broken by the context reports the context's error.
func (s *logStream) fail(err error) {
	for _, st := range []runtime.Stream{runtime.Stdout, runtime.Stderr} {
		if pl := s.partial[st]; pl != nil {
			s.emit(*pl)
			delete(s.partial, st)
		}
	}
	switch {
	case s.ctx.Err() != nil:
		s.err = s.ctx.Err()
	case errors.Is(err, io.EOF):
		s.err = io.EOF
	default:
		s.err = fmt.Errorf("reading logs: %w", err)
	}
}

// splitTimestamp takes the engine's "2006-01-02T15:04:05.999999999Z " prefix
// off a payload.
func splitTimestamp(p string) (time.Time, string) {
	head, rest, ok := strings.Cut(p, " ")
	if !ok {
		head, rest = strings.TrimSuffix(p, "\n"), "\n"
		if !strings.HasSuffix(p, "\n") {
			rest = ""
		}
	}
	t, err := time.Parse(time.RFC3339Nano, head)
	if err != nil {
		return time.Time{}, p
	}
	return t.UTC(), rest
}
