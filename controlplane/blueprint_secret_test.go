package controlplane_test

import (
	"strings"
	"testing"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Secret variables instantiated from a blueprint enter the raft log sealed,
// like those created directly, and are masked in responses.
func TestBlueprintSecretsAreSealed(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	s := c.Servers[0]
	ctx := cptest.Ctx(t, c.AdminToken)
	conn := cptest.Conn(t, s)
	if _, err := atollv1.NewBlueprintServiceClient(conn).CreateBlueprint(ctx, &atollv1.CreateBlueprintRequest{Blueprint: &atollv1.Blueprint{
		Name:      "with-secret",
		Variables: []*atollv1.BlueprintVariable{{Name: "token", Required: true, Secret: true}},
		VariableSets: []*atollv1.VariableSet{{Name: "creds", Variables: map[string]*atollv1.Variable{
			"TOKEN": {Value: "${token}", Secret: true}, "MODE": {Value: "prod"},
		}}},
	}}); err != nil {
		t.Fatal(err)
	}
	env, err := atollv1.NewEnvironmentServiceClient(conn).CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{
		Name: "secret-env", BlueprintId: "with-secret", Variables: map[string]string{"token": "t0ps3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	if env.Variables["token"] != "********" {
		t.Fatalf("environment records the secret variable as %q", env.Variables["token"])
	}
	st, _ := s.State()
	if v := st.Snapshot().Environment(env.Id).Variables["token"]; v != "********" {
		t.Fatalf("stored environment variable %q", v)
	}
	sets := st.Snapshot().VariableSets(env.Id)
	if len(sets) != 1 {
		t.Fatalf("%d variable sets", len(sets))
	}
	if v := sets[0].Variables["TOKEN"].GetValue(); !strings.HasPrefix(v, "enc:v1:") || strings.Contains(v, "t0ps3cret") {
		t.Fatalf("secret stored as %q", v)
	}
	if v := sets[0].Variables["MODE"].GetValue(); v != "prod" {
		t.Fatalf("plain variable stored as %q", v)
	}
	got, err := atollv1.NewVariableSetServiceClient(conn).GetVariableSet(ctx, &atollv1.GetVariableSetRequest{EnvId: env.Id, VariableSetId: "creds"})
	if err != nil || got.Variables["TOKEN"].Value != "********" {
		t.Fatalf("response: %v %v", got, err)
	}
}
