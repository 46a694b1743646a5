package cptest

import (
	"io"
	"testing"
	"time"
)

// Stream reads a stream (gRPC server stream, HTTP body lines, ...) in the
// background so a test can await items and the end with deadlines.
type Stream[T any] struct {
	items chan T
	done  chan error
	all   []T // what Until and End consumed
	show  func([]T) string
}

// ReadStream starts reading with recv until it fails; io.EOF is a clean
// end. show describes the items read so far in failure messages.
func ReadStream[T any](recv func() (T, error), show func([]T) string) *Stream[T] {
	s := &Stream[T]{items: make(chan T, 100000), done: make(chan error, 1), show: show}
	go func() {
		for {
			v, err := recv()
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				s.done <- err
				return
			}
			s.items <- v
		}
	}()
	return s
}

// Until reads until an item satisfies stop and returns every item read so
// far; it fails the test if the stream ends first or nothing matches in time.
func (s *Stream[T]) Until(t testing.TB, timeout time.Duration, what string, stop func(T) bool) []T {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case v := <-s.items:
			s.all = append(s.all, v)
			if stop(v) {
				return s.all
			}
		case err := <-s.done:
			t.Fatalf("waiting for %s: the stream ended (%v) after %s", what, err, s.show(s.all))
		case <-deadline.C:
			t.Fatalf("no %s within %v; got %s", what, timeout, s.show(s.all))
		}
	}
}

// End waits for the stream's end and returns every item and its error.
func (s *Stream[T]) End(t testing.TB, timeout time.Duration) ([]T, error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case v := <-s.items:
			s.all = append(s.all, v)
		case err := <-s.done:
			for len(s.items) > 0 {
				s.all = append(s.all, <-s.items)
			}
			return s.all, err
		case <-deadline.C:
			t.Fatalf("the stream did not end within %v; got %s", timeout, s.show(s.all))
		}
	}
}

// All is every item Until and End consumed so far.
func (s *Stream[T]) All() []T { return s.all }
