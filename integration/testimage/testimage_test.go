package testimage

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

func TestEnsureBuildsImageOnceAndSkipsRebuild(t *testing.T) {
	tag := Ensure(t, "")
	if tag != DefaultTag {
		t.Fatalf("tag = %q", tag)
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	img, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if img.Config.Labels[HashLabel] == "" {
		t.Fatalf("no %s label: %v", HashLabel, img.Config.Labels)
	}
	if got := img.Config.Entrypoint; len(got) != 1 || got[0] != "/testapp" {
		t.Fatalf("entrypoint = %q", got)
	}

	// A second Build finds the same hash and does nothing: the image id stays.
	start := time.Now()
	if err := Build(ctx, cli, tag); err != nil {
		t.Fatal(err)
	}
	again, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != img.ID {
		t.Fatalf("rebuilt: %s -> %s", img.ID, again.ID)
	}
	t.Logf("up-to-date check took %v", time.Since(start))
	if Ensure(t, "") != tag {
		t.Fatal("second Ensure")
	}
}
