package controlplane_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

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

// A secret blueprint variable used in a variable set entry not marked secret
// still enters the log sealed and is shown masked; used anywhere else (where
// it would be stored and shown in the clear) the blueprint is refused.
func TestBlueprintSecretVariableNeverInClear(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	s := c.Servers[0]
	ctx := cptest.Ctx(t, c.AdminToken)
	conn := cptest.Conn(t, s)
	bps := atollv1.NewBlueprintServiceClient(conn)
	secretVar := []*atollv1.BlueprintVariable{{Name: "dbpass", Required: true, Secret: true}}
	_, err := bps.CreateBlueprint(ctx, &atollv1.CreateBlueprintRequest{Blueprint: &atollv1.Blueprint{
		Name: "leaky", Variables: secretVar,
		Apps: []*atollv1.App{{Name: "s", Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "busybox", Tag: "1"}},
			Args: structpb.NewStringValue("--pw ${dbpass}")}},
	}})
	wantCode(t, err, codes.InvalidArgument, "apps[0].args", "secret variable ${dbpass}")
	list, _ := structpb.NewList([]any{"--user", "${dbpass}"})
	_, err = bps.CreateBlueprint(ctx, &atollv1.CreateBlueprintRequest{Blueprint: &atollv1.Blueprint{
		Name: "leaky-list", Variables: secretVar,
		Apps: []*atollv1.App{{Name: "s", Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "busybox", Tag: "1"}},
			Args: structpb.NewListValue(list)}},
	}})
	wantCode(t, err, codes.InvalidArgument, "apps[0].args[1]:")
	_, err = bps.CreateBlueprint(ctx, &atollv1.CreateBlueprintRequest{Blueprint: &atollv1.Blueprint{
		Name: "defaulted", Variables: []*atollv1.BlueprintVariable{{Name: "dbpass", Secret: true, Default: "changeme"}},
	}})
	wantCode(t, err, codes.InvalidArgument, "variables[0].default")
	if _, err := bps.CreateBlueprint(ctx, &atollv1.CreateBlueprintRequest{Blueprint: &atollv1.Blueprint{
		Name: "implicit", Variables: secretVar,
		VariableSets: []*atollv1.VariableSet{{Name: "cfg", Variables: map[string]*atollv1.Variable{
			"DB_PASS": {Value: "${dbpass}"}, "DB_USER": {Value: "app"},
		}}},
	}}); err != nil {
		t.Fatal(err)
	}
	env, err := atollv1.NewEnvironmentServiceClient(conn).CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{
		Name: "implicit-env", BlueprintId: "implicit", Variables: map[string]string{"dbpass": "hunter2SECRET"}})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := s.State()
	sets := st.Snapshot().VariableSets(env.Id)
	if len(sets) != 1 {
		t.Fatalf("%d variable sets", len(sets))
	}
	if v := sets[0].Variables["DB_PASS"]; !v.GetSecret() || !strings.HasPrefix(v.GetValue(), "enc:v1:") {
		t.Fatalf("DB_PASS stored as %v, want secret and sealed", v)
	}
	if v := sets[0].Variables["DB_USER"]; v.GetSecret() || v.GetValue() != "app" {
		t.Fatalf("DB_USER stored as %v, want plain", v)
	}
	got, err := atollv1.NewVariableSetServiceClient(conn).GetVariableSet(ctx, &atollv1.GetVariableSetRequest{EnvId: env.Id, VariableSetId: "cfg"})
	if err != nil || got.Variables["DB_PASS"].Value != "********" || strings.Contains(got.String(), "hunter2") {
		t.Fatalf("response: %v %v", got, err)
	}
}

// A literal secret in a blueprint's variable set is stored sealed in the
// blueprint itself (not only once instantiated), sealed once, and values
// that look sealed are refused from users.
func TestBlueprintLiteralSecretSealed(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	s := c.Servers[0]
	ctx := cptest.Ctx(t, c.AdminToken)
	conn := cptest.Conn(t, s)
	bps := atollv1.NewBlueprintServiceClient(conn)
	bp, err := bps.CreateBlueprint(ctx, &atollv1.CreateBlueprintRequest{Blueprint: &atollv1.Blueprint{
		Name: "literal",
		VariableSets: []*atollv1.VariableSet{{Name: "cfg", Variables: map[string]*atollv1.Variable{
			"API_KEY": {Value: "literal-s3cret", Secret: true}, "MODE": {Value: "prod"},
		}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(bp.String(), "literal-s3cret") {
		t.Fatalf("response shows the secret: %v", bp)
	}
	st, _ := s.State()
	stored := st.Snapshot().Blueprint(bp.Id).VariableSets[0].Variables["API_KEY"].GetValue()
	if !strings.HasPrefix(stored, "enc:v1:") || strings.Contains(stored, "literal-s3cret") {
		t.Fatalf("blueprint stores the secret as %q", stored)
	}
	env, err := atollv1.NewEnvironmentServiceClient(conn).CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "lit", BlueprintId: "literal"})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Snapshot().VariableSets(env.Id)[0].Variables["API_KEY"].GetValue(); got != stored {
		t.Fatalf("instantiated value %q, want the blueprint's sealed value (sealed once)", got)
	}
	// Sealed-looking values from users: refused everywhere.
	_, err = atollv1.NewVariableSetServiceClient(conn).CreateVariableSet(ctx, &atollv1.CreateVariableSetRequest{EnvId: env.Id,
		VariableSet: &atollv1.VariableSet{Name: "x", Variables: map[string]*atollv1.Variable{"K": {Value: stored, Secret: true}}}})
	wantCode(t, err, codes.InvalidArgument, "reserved")
	_, err = bps.CreateBlueprint(ctx, &atollv1.CreateBlueprintRequest{Blueprint: &atollv1.Blueprint{
		Name: "copied", VariableSets: []*atollv1.VariableSet{{Name: "cfg", Variables: map[string]*atollv1.Variable{"K": {Value: stored, Secret: true}}}},
	}})
	wantCode(t, err, codes.InvalidArgument, "reserved")
	if _, err := bps.CreateBlueprint(ctx, &atollv1.CreateBlueprintRequest{Blueprint: &atollv1.Blueprint{
		Name: "withvar", Variables: []*atollv1.BlueprintVariable{{Name: "k", Secret: true}},
		VariableSets: []*atollv1.VariableSet{{Name: "cfg", Variables: map[string]*atollv1.Variable{"K": {Value: "${k}"}}}},
	}}); err != nil {
		t.Fatal(err)
	}
	_, err = atollv1.NewEnvironmentServiceClient(conn).CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "inj", BlueprintId: "withvar",
		Variables: map[string]string{"k": stored}})
	wantCode(t, err, codes.InvalidArgument, "reserved")
}
