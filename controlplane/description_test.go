package controlplane_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/atollhq/atoll/controlplane/cptest"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Descriptions are free text, but not NUL, escape sequences or
// text-direction overrides (which make text display as something else).
func TestDescriptionRefusesInvisibleCharacters(t *testing.T) {
	f := newAPIFixture(t)
	for _, d := range []string{"a\x00b", "x\x1b[31mred", "invoice\u202Etxt.exe"} {
		_, err := f.envs.CreateEnvironment(f.ctx, &atollv1.CreateEnvironmentRequest{Name: "d", Description: d})
		wantCode(t, err, codes.InvalidArgument, "description", "text-direction")
	}
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "ok", Description: "line one\nline two\twith tab, ünïcödé"})
	if e.Description != "line one\nline two\twith tab, ünïcödé" {
		t.Fatalf("description stored as %q", e.Description)
	}
}

// Release descriptions follow the same rule.
func TestReleaseDescriptionRefusesInvisibleCharacters(t *testing.T) {
	f := newAPIFixture(t)
	env := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "r"})
	rels := atollv1.NewReleaseServiceClient(cptest.Conn(t, f.srv))
	_, err := rels.CreateRelease(f.ctx, &atollv1.CreateReleaseRequest{ProjectId: env.ProjectId, Release: &atollv1.Release{
		AppName: "api", Version: "1.0.0", Source: image("v1"), Description: "x\u202ey"}})
	wantCode(t, err, codes.InvalidArgument, "description")
}
