package controlplane_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/client"
	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func saveSnapshot(t *testing.T, ctx context.Context, ops atollv1.OperatorServiceClient) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := client.SaveSnapshot(ctx, ops, &buf); err != nil {
		t.Fatalf("save snapshot: %v", err)
	}
	return buf.Bytes()
}

func restoreSnapshot(ctx context.Context, ops atollv1.OperatorServiceClient, data []byte) (uint64, error) {
	return client.RestoreSnapshot(ctx, ops, bytes.NewReader(data))
}

func TestSnapshotSaveRestoreIntoFreshCluster(t *testing.T) {
	a := cptest.NewCluster(t, 3)
	actx := cptest.Ctx(t, a.AdminToken)
	envs := cptest.Envs(t, a.Followers()[0])
	var ids []string
	for i := range 12 {
		e, err := envs.CreateEnvironment(actx, smallEnv(fmt.Sprintf("env-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.Id)
	}
	for _, id := range ids[:4] {
		_, err := envs.UpdateEnvironment(actx, &atollv1.UpdateEnvironmentRequest{
			EnvironmentId: id,
			Environment:   &atollv1.Environment{Description: "updated", ResourceQuota: &atollv1.Resources{Cpu: 2, Memory: 2, Storage: 2}},
			UpdateMask:    &fieldmaskpb.FieldMask{Paths: []string{"description", "resourceQuota"}},
		})
		if err != nil {
			t.Fatalf("update: %v", err)
		}
	}
	for _, id := range ids[4:7] {
		if _, err := envs.DeleteEnvironment(actx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: id, Force: true}); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
	wantHash := a.WaitConverged(30 * time.Second)

	// Save through a follower (forwarded to the leader).
	data := saveSnapshot(t, actx, cptest.Ops(t, a.Followers()[1]))
	if len(data) == 0 {
		t.Fatal("empty snapshot")
	}

	b := cptest.NewCluster(t, 3)
	bctx := cptest.Ctx(t, b.AdminToken)
	bops := cptest.Ops(t, b.Followers()[0])

	// Garbage is refused and leaves the state alone.
	before := b.WaitConverged(30 * time.Second)
	_, err := restoreSnapshot(bctx, bops, []byte("this is not a snapshot"))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("restore of garbage: want INVALID_ARGUMENT, got %v", err)
	}
	if after := b.WaitConverged(30 * time.Second); after != before {
		t.Fatal("state changed after a refused restore")
	}

	// Restore through a follower of B (forwarded to B's leader).
	if _, err := restoreSnapshot(bctx, bops, data); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := b.WaitConverged(30 * time.Second); got != wantHash {
		t.Fatalf("restored state hash %s, want %s (cluster A's)", got, wantHash)
	}

	// B now holds A's organizations and tokens: A's admin token works on B,
	// and B keeps taking writes, forwarded from a follower after the restore.
	ctx := cptest.Ctx(t, a.AdminToken)
	benvs := cptest.Envs(t, b.Followers()[1])
	got, err := benvs.GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: ids[0]})
	if err != nil || got.Description != "updated" {
		t.Fatalf("get restored env via follower: %v %v", got, err)
	}
	e, err := benvs.CreateEnvironment(ctx, smallEnv("after-restore"))
	if err != nil {
		t.Fatalf("create after restore: %v", err)
	}
	b.WaitConverged(30 * time.Second)
	requireOnAll(t, b, append(ids[:4:4], e.Id))
}
