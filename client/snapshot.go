// Package client holds the Go client helpers shared by the CLI, the servers
// (which forward to the leader) and the tests.
package client

import (
	"context"
	"errors"
	"io"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// ChunkSize is the size of the snapshot chunks sent.
const ChunkSize = 256 << 10

// SaveSnapshot streams a snapshot of the cluster's state into w and returns
// the number of bytes written.
func SaveSnapshot(ctx context.Context, ops atollv1.OperatorServiceClient, w io.Writer) (int64, error) {
	stream, err := ops.SaveSnapshot(ctx, &atollv1.SaveSnapshotRequest{})
	if err != nil {
		return 0, err
	}
	var n int64
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		m, err := w.Write(c.Data)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
}

// RestoreSnapshot streams a saved snapshot from r to the cluster, which
// replaces its whole state with it, and returns the raft index it applied.
func RestoreSnapshot(ctx context.Context, ops atollv1.OperatorServiceClient, r io.Reader) (uint64, error) {
	stream, err := ops.RestoreSnapshot(ctx)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, ChunkSize)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := stream.Send(&atollv1.SnapshotChunk{Data: buf[:n]}); err != nil {
				if errors.Is(err, io.EOF) {
					break // the server ended the stream: CloseAndRecv has its status
				}
				return 0, err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return 0, rerr
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return 0, err
	}
	return resp.Index, nil
}
