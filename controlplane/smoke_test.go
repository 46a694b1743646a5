package controlplane_test

import (
	"testing"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func TestSmokeSingleServer(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	envs := cptest.Envs(t, c.Servers[0])
	ctx := cptest.Ctx(t, c.AdminToken)
	e, err := envs.CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "demo", Ttl: "48h"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != atollv1.EnvironmentStatus_RUNNING || e.Slug != "demo" || e.Version != 1 || e.CreatedBy != "admin" {
		t.Fatalf("unexpected env %v", e)
	}
	got, err := envs.GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil || got.Name != "demo" {
		t.Fatalf("get: %v %v", got, err)
	}
}

func TestSmokeThreeServersForwarding(t *testing.T) {
	c := cptest.NewCluster(t, 3)
	f := c.Followers()[0]
	ctx := cptest.Ctx(t, c.AdminToken)
	e, err := cptest.Envs(t, f).CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "via-follower"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cptest.Envs(t, c.Followers()[1]).GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil || got.Name != "via-follower" {
		t.Fatalf("get: %v %v", got, err)
	}
}
