package controlplane_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/keyring"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// wantContent fails unless every assignment the agent received for the
// instances carries exactly these variables and this file content.
func wantContent(t *testing.T, agent *cptest.FakeAgent, insts []string, env map[string]string, file string) {
	t.Helper()
	for _, id := range insts {
		ups := agent.Upserts(id)
		if len(ups) == 0 {
			t.Fatalf("instance %s: no assignment received", id)
		}
		for i, as := range ups {
			for k, v := range env {
				if as.Env[k] != v {
					t.Fatalf("instance %s, assignment %d of %d: %s=%q, want %q (env %v)", id, i+1, len(ups), k, as.Env[k], v, as.Env)
				}
			}
			if len(as.Env) != len(env) {
				t.Fatalf("instance %s, assignment %d: env %v, want exactly %v", id, i+1, as.Env, env)
			}
			if len(as.Files) != 1 || string(as.Files[0].Content) != file {
				t.Fatalf("instance %s, assignment %d: files %v, want %q", id, i+1, as.Files, file)
			}
		}
	}
}

// Updating a variable set and then a file in place: the app mounting them
// rolls (start-first, never below its replicas); every assignment its old
// instances ever received has the old values, the new instances get the new
// ones; an app not mounting them is untouched; secrets stay sealed in the
// state and masked in answers; the old content goes with the last old
// instance; a stale expectedVersion is ABORTED, bad input names the field.
func TestContentUpdateRollsApps(t *testing.T) {
	f := newSchedFixture(t, 1, nil)
	agent := f.agent("host", 4000, 8192)
	conn := cptestConn(t, f)
	vsets, files := atollv1.NewVariableSetServiceClient(conn), atollv1.NewFileServiceClient(conn)
	vs, err := vsets.CreateVariableSet(f.ctx, &atollv1.CreateVariableSetRequest{EnvId: f.env.Id, VariableSet: &atollv1.VariableSet{Name: "cfg",
		Variables: map[string]*atollv1.Variable{"GREETING": {Value: "hello"}, "API_KEY": {Value: "s3cret", Secret: true}, "OLD": {Value: "x"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := files.CreateFile(f.ctx, &atollv1.CreateFileRequest{EnvId: f.env.Id, File: &atollv1.File{Name: "conf", Text: "one"}}); err != nil {
		t.Fatal(err)
	}
	web, err := f.apps.CreateApp(f.ctx, &atollv1.CreateAppRequest{EnvId: f.env.Id, App: &atollv1.App{
		Name: "web", Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: "1"}}, Replicas: 2,
		ResourceRequests:  &atollv1.ResourceRequests{Cpu: "100m", Memory: "64Mi"},
		VariableSetMounts: []*atollv1.VariableSetMount{{VarSetNameRef: "cfg"}},
		FileMounts:        []*atollv1.FileMount{{FileNameRef: "conf", MountPath: "/etc/conf"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	other := f.createApp(t, "other", 1, "100m", "64Mi")
	f.waitSettled(t, web.Id, 2)
	f.waitSettled(t, other.Id, 1)
	old := ids(f.snap(), web.Id, 1)
	otherInsts := ids(f.snap(), other.Id, 1)

	// Set two keys (one secret), remove one.
	w := f.watchInstances(web.Id)
	out, err := vsets.UpdateVariableSet(f.ctx, &atollv1.UpdateVariableSetRequest{EnvId: f.env.Id, VariableSetId: "cfg", ExpectedVersion: 1,
		Set: map[string]*atollv1.Variable{"GREETING": {Value: "bonjour"}, "API_KEY": {Value: "n3w", Secret: true}}, Remove: []string{"OLD"}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Version != 2 || !slices.Equal(out.RollingApps, []string{"web"}) || out.Variables["API_KEY"].GetValue() != "********" ||
		out.Variables["GREETING"].GetValue() != "bonjour" || out.Variables["OLD"] != nil {
		t.Fatalf("update answer: %v", out)
	}
	sealed := f.snap().VariableSet(vs.Id).Variables["API_KEY"].GetValue()
	if !strings.HasPrefix(sealed, keyring.Prefix) || strings.Contains(sealed, "n3w") {
		t.Fatalf("secret stored as %q, want it sealed", sealed)
	}
	v2 := f.snap().App(web.Id).SpecVersion
	f.c.WaitState(schedWait, "web rolled onto the new variables", func(tx *state.Txn) bool {
		return len(ids(tx, web.Id, v2)) == 2 && settled(tx, web.Id, 2)
	})
	if minRun, maxTotal := w.end(); minRun < 2 || maxTotal > 3 {
		t.Fatalf("the roll went down to %d RUNNING (want >= 2) and up to %d instances (want <= 3)", minRun, maxTotal)
	}
	tx := f.snap()
	wantContent(t, agent, old, map[string]string{"GREETING": "hello", "API_KEY": "s3cret", "OLD": "x"}, "one")
	second := ids(tx, web.Id, v2)
	wantContent(t, agent, second, map[string]string{"GREETING": "bonjour", "API_KEY": "n3w"}, "one")
	if tx.VariableSetVersion(vs.Id, 1) != nil || len(tx.AppSpecs(web.Id)) != 0 {
		t.Fatal("old content or spec kept after the roll")
	}
	if a := tx.App(other.Id); a.Version != 1 || !slices.Equal(ids(tx, other.Id, 1), otherInsts) {
		t.Fatalf("an app not mounting the set changed: version %d instances %v", a.Version, ids(tx, other.Id, 1))
	}

	// The same secret plaintext again (sealed differently each time): no
	// new version, nothing rolls.
	same, err := vsets.UpdateVariableSet(f.ctx, &atollv1.UpdateVariableSetRequest{EnvId: f.env.Id, VariableSetId: "cfg",
		Set: map[string]*atollv1.Variable{"API_KEY": {Value: "n3w", Secret: true}, "GREETING": {Value: "bonjour"}}})
	if err != nil {
		t.Fatal(err)
	}
	if same.Version != 2 || len(same.RollingApps) != 0 || f.snap().App(web.Id).SpecVersion != v2 {
		t.Fatalf("a no-op update: version %d rolling %v spec %d", same.Version, same.RollingApps, f.snap().App(web.Id).SpecVersion)
	}

	// The file.
	fo, err := files.UpdateFile(f.ctx, &atollv1.UpdateFileRequest{EnvId: f.env.Id, FileId: "conf", Text: "two"})
	if err != nil {
		t.Fatal(err)
	}
	if fo.Version != 2 || !slices.Equal(fo.RollingApps, []string{"web"}) || fo.SizeBytes != 3 {
		t.Fatalf("file update answer: %v", fo)
	}
	v3 := f.snap().App(web.Id).SpecVersion
	f.c.WaitState(schedWait, "web rolled onto the new file", func(tx *state.Txn) bool {
		return len(ids(tx, web.Id, v3)) == 2 && settled(tx, web.Id, 2)
	})
	wantContent(t, agent, second, map[string]string{"GREETING": "bonjour", "API_KEY": "n3w"}, "one")
	wantContent(t, agent, ids(f.snap(), web.Id, v3), map[string]string{"GREETING": "bonjour", "API_KEY": "n3w"}, "two")
	if f.snap().FileVersion(fo.Id, 1) != nil {
		t.Fatal("old file content kept after the roll")
	}

	// Refusals.
	_, err = vsets.UpdateVariableSet(f.ctx, &atollv1.UpdateVariableSetRequest{EnvId: f.env.Id, VariableSetId: "cfg", ExpectedVersion: 1,
		Set: map[string]*atollv1.Variable{"GREETING": {Value: "late"}}})
	wantCode(t, err, codes.Aborted, "version 2")
	_, err = files.UpdateFile(f.ctx, &atollv1.UpdateFileRequest{EnvId: f.env.Id, FileId: "conf", Text: "x", ExpectedVersion: 1})
	wantCode(t, err, codes.Aborted)
	_, err = vsets.UpdateVariableSet(f.ctx, &atollv1.UpdateVariableSetRequest{EnvId: f.env.Id, VariableSetId: "cfg",
		Set: map[string]*atollv1.Variable{"1BAD": {Value: "v"}}, Remove: []string{"NOPE"}})
	if fv := fieldViolations(wantCode(t, err, codes.InvalidArgument)); !contains(fv, "set.1BAD") || !contains(fv, "remove[0]") {
		t.Fatalf("violations %v, want set.1BAD and remove[0]", fv)
	}
	_, err = vsets.UpdateVariableSet(f.ctx, &atollv1.UpdateVariableSetRequest{EnvId: f.env.Id, VariableSetId: "cfg",
		Set: map[string]*atollv1.Variable{"K": {Value: keyring.Prefix + "abc"}}})
	if fv := fieldViolations(wantCode(t, err, codes.InvalidArgument)); !contains(fv, "set.K") {
		t.Fatalf("a sealed-looking value: violations %v, want set.K", fv)
	}
	if a := f.snap().App(web.Id); a.SpecVersion != v3 {
		t.Fatalf("refused updates rolled web: spec version %d, want %d", a.SpecVersion, v3)
	}
}

// The REST routes: PATCH and PUT of variable sets and files, secrets
// masked in the answer, errors named as the body names them, another
// organization's set is 404, a token without app:write 403, a deleted
// environment 409 FAILED_PRECONDITION.
func TestContentUpdateREST(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	env := r.must(http.StatusCreated, "POST", "/v1/environments", map[string]any{"name": "cfg-rest"}).str("id")
	base := "/v1/environments/" + env
	vs := r.must(http.StatusCreated, "POST", base+"/variable-sets", map[string]any{"name": "cfg",
		"variables": map[string]any{"A": map[string]any{"value": "1"}, "OLD": map[string]any{"value": "x"}}})
	path := base + "/variable-sets/" + vs.str("id")
	if vs.str("version") != "1" {
		t.Fatalf("created set's version %q, want 1: %s", vs.str("version"), vs.raw)
	}

	o := r.must(http.StatusOK, "PATCH", path, map[string]any{"set": map[string]any{"K": map[string]any{"value": "v3ry-s3cret", "secret": true}}, "remove": []string{"OLD"}})
	if o.str("version") != "2" || o.str("variables.K.value") != "********" || o.str("variables.A.value") != "1" || o.get("variables.OLD") != nil ||
		strings.Contains(o.raw, "v3ry-s3cret") {
		t.Fatalf("PATCH answer: %s", o.raw)
	}
	if g := r.must(http.StatusOK, "GET", path, nil); g.str("variables.K.value") != "********" || strings.Contains(g.raw, "v3ry") {
		t.Fatalf("GET after PATCH: %s", g.raw)
	}
	o = r.must(http.StatusOK, "PUT", base+"/variable-sets/cfg", map[string]any{"variables": map[string]any{"B": map[string]any{"value": "2"}}, "expectedVersion": 2})
	if o.str("version") != "3" || o.get("variables.A") != nil || o.str("variables.B.value") != "2" {
		t.Fatalf("PUT answer: %s", o.raw)
	}
	code, o := r.do("PATCH", path, map[string]any{"set": map[string]any{"C": map[string]any{"value": "3"}}, "expectedVersion": 2})
	if code != http.StatusConflict || o.str("code") != "ABORTED" {
		t.Fatalf("stale expectedVersion: %d %s, want 409 ABORTED", code, o.raw)
	}
	code, o = r.do("PATCH", path, map[string]any{"set": map[string]any{"9X": map[string]any{"value": "3"}}})
	wantViolation(t, code, o, "set.9X", "environment variable name")
	code, o = r.do("PATCH", path, map[string]any{"remove": []string{"MISSING"}})
	wantViolation(t, code, o, "remove[0]", "no variable")
	code, o = r.do("PATCH", path, map[string]any{})
	wantViolation(t, code, o, "updateMask", "nothing to change")
	code, o = r.do("PATCH", path, map[string]any{"variables": map[string]any{"X": map[string]any{"value": "1"}}, "remove": []string{"B"}})
	wantViolation(t, code, o, "variables", "not both")
	// Emptying a set takes the mask.
	o = r.must(http.StatusOK, "PATCH", path, map[string]any{"variables": map[string]any{}, "updateMask": "variables"})
	if v, _ := o.get("variables").(map[string]any); o.str("version") != "4" || len(v) != 0 {
		t.Fatalf("emptying the set: %s", o.raw)
	}

	fl := r.must(http.StatusCreated, "POST", base+"/files", map[string]any{"name": "conf", "text": "one"})
	fpath := base + "/files/" + fl.str("id")
	o = r.must(http.StatusOK, "PATCH", fpath, map[string]any{"text": "two!"})
	if o.str("version") != "2" || o.num("sizeBytes") != 4 {
		t.Fatalf("file PATCH: %s", o.raw)
	}
	o = r.must(http.StatusOK, "PUT", base+"/files/conf", map[string]any{"content": "dGhyZWU=", "expectedVersion": 2}) // "three"
	if o.str("version") != "3" || o.num("sizeBytes") != 5 {
		t.Fatalf("file PUT: %s", o.raw)
	}
	code, o = r.do("PATCH", fpath, map[string]any{"text": "x", "content": "eA=="})
	wantViolation(t, code, o, "text", "not both")
	code, o = r.do("PATCH", fpath, map[string]any{"text": strings.Repeat("x", 1<<20+1)})
	if code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
		t.Fatalf("an oversized file: %d %s", code, o.raw)
	}

	// Another organization does not see them; a read-only token cannot write.
	otherTok := f.newOrg(t, "other-org", nil)
	code, o = f.rest(t, otherTok).do("PATCH", path, map[string]any{"set": map[string]any{"A": map[string]any{"value": "1"}}})
	if code != http.StatusNotFound {
		t.Fatalf("another organization's PATCH: %d %s, want 404", code, o.raw)
	}
	code, o = f.rest(t, otherTok).do("PATCH", fpath, map[string]any{"text": "x"})
	if code != http.StatusNotFound {
		t.Fatalf("another organization's file PATCH: %d %s, want 404", code, o.raw)
	}
	ro := f.token(t, "app:read", "env:read")
	code, o = f.rest(t, ro).do("PATCH", path, map[string]any{"set": map[string]any{"A": map[string]any{"value": "1"}}})
	if code != http.StatusForbidden || !strings.Contains(o.raw, "app:write") {
		t.Fatalf("PATCH with a read-only token: %d %s, want 403 naming app:write", code, o.raw)
	}
	code, _ = f.rest(t, ro).do("PATCH", fpath, map[string]any{"text": "x"})
	if code != http.StatusForbidden {
		t.Fatalf("file PATCH with a read-only token: %d, want 403", code)
	}

	// A soft-deleted environment.
	r.must(http.StatusOK, "DELETE", "/v1/environments/"+env, nil)
	code, o = r.do("PATCH", path, map[string]any{"set": map[string]any{"A": map[string]any{"value": "1"}}})
	if code != http.StatusConflict || o.str("code") != "FAILED_PRECONDITION" {
		t.Fatalf("PATCH in a deleted environment: %d %s, want 409 FAILED_PRECONDITION", code, o.raw)
	}
}
