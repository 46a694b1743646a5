package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var grpcBannerRe = regexp.MustCompile(`(\S+) \(gRPC\)`)

// devServer runs `atoll dev` in this process and returns its gRPC address and
// admin token, and a function that stops it and returns run's error.
func devServer(t *testing.T) (addr, token string, stop func() error) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		// --no-agent: these tests run no apps, and a local agent owns every
		// atoll container on the engine (it has no ContainerLabels): it would
		// stop the containers of an `atoll dev` running on this machine, and
		// those of the integration tests running in parallel.
		done <- run(ctx, []string{"dev", "--no-agent", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0"}, &out, &errOut)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := grpcBannerRe.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("atoll dev exited early: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no banner from atoll dev within 30s\nstdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("atoll dev did not stop within 30s of cancel")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return addr, strings.TrimSpace(string(b)), stop
}

type cliRunner struct {
	t           *testing.T
	addr, token string
}

// run runs the CLI with --addr and --token appended after the positionals
// (which also checks that flags may follow positional arguments).
func (r cliRunner) run(args ...string) (stdout, stderr string, err error) {
	r.t.Helper()
	var o, e bytes.Buffer
	full := append(append([]string{}, args...), "--addr", r.addr, "--token", r.token)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = run(ctx, full, &o, &e)
	return o.String(), e.String(), err
}

func (r cliRunner) ok(args ...string) string {
	r.t.Helper()
	out, stderr, err := r.run(args...)
	if err != nil {
		r.t.Fatalf("atoll %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

func (r cliRunner) fails(args ...string) error {
	r.t.Helper()
	out, _, err := r.run(args...)
	if err == nil {
		r.t.Fatalf("atoll %s: succeeded, want an error; stdout:\n%s", strings.Join(args, " "), out)
	}
	return err
}

func (r cliRunner) json(v any, args ...string) {
	r.t.Helper()
	out := r.ok(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		r.t.Fatalf("atoll %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Fatalf("%s: %q not found in:\n%s", what, sub, s)
		}
	}
}

func TestCLI(t *testing.T) {
	t.Setenv("ATOLL_TOKEN", "")
	t.Setenv("ATOLL_ADDR", "")
	addr, token, stop := devServer(t)
	cli := cliRunner{t: t, addr: addr, token: token}

	// env create with flags after the name; quantities in several notations
	out := cli.ok("env", "create", "demo", "--cpu", "2", "--memory", "2Gi", "--storage", "10Gi", "--ttl", "48h", "--label", "team=web")
	mustContain(t, "env create", out, "created environment demo", "env_", "2000m", "2048MB", "10240MB")

	out = cli.ok("env", "list")
	mustContain(t, "env list", out, "NAME", "STATUS", "demo", "2000m")

	var list struct {
		Environments []struct {
			ID        string `json:"id"`
			Name      string `json:"name"`
			IsDeleted bool   `json:"isDeleted"`
		} `json:"environments"`
		TotalCount int `json:"totalCount"`
	}
	cli.json(&list, "env", "list")
	if list.TotalCount != 1 || len(list.Environments) != 1 || list.Environments[0].Name != "demo" {
		t.Fatalf("env list -o json: %+v", list)
	}
	id := list.Environments[0].ID

	// get by name and by id
	out = cli.ok("env", "get", "demo")
	mustContain(t, "env get NAME", out, id, "team=web")
	var env struct {
		ID            string `json:"id"`
		Name          string `json:"name"`
		IsDeleted     bool   `json:"isDeleted"`
		Version       int    `json:"version"`
		ResourceQuota struct {
			CPU    int `json:"cpu"`
			Memory int `json:"memory"`
		} `json:"resourceQuota"`
	}
	cli.json(&env, "env", "get", id)
	if env.Name != "demo" || env.ResourceQuota.CPU != 2000 || env.ResourceQuota.Memory != 2048 {
		t.Fatalf("env get ID -o json: %+v", env)
	}

	// update the quota; only the flags given change
	out = cli.ok("env", "update", "demo", "--cpu", "1500m", "--memory", "1024")
	mustContain(t, "env update", out, "version 2", "resourceQuota.cpu", "resourceQuota.memory")
	cli.json(&env, "env", "get", "demo")
	if env.ResourceQuota.CPU != 1500 || env.ResourceQuota.Memory != 1024 || env.Version != 2 {
		t.Fatalf("after update: %+v", env)
	}

	out = cli.ok("env", "usage", "demo")
	mustContain(t, "env usage", out, "RESOURCE", "QUOTA", "AVAILABLE", "UTIL", "MEASURED", "1500m", "1024MB", "10240MB")

	var hist struct {
		Versions []struct {
			Version int    `json:"version"`
			Action  string `json:"action"`
		} `json:"versions"`
	}
	cli.json(&hist, "env", "history", "demo")
	if len(hist.Versions) != 2 {
		t.Fatalf("env history: want 2 versions, got %+v", hist)
	}
	out = cli.ok("env", "history", "demo")
	mustContain(t, "env history", out, "VERSION", "WHO", "ACTION", "CHANGED")

	// delete hides it; --all shows it; restore by name brings it back
	mustContain(t, "env delete", cli.ok("env", "delete", "demo", "--force"), "deleted environment "+id)
	out = cli.ok("env", "list")
	if strings.Contains(out, id) {
		t.Fatalf("env list shows a deleted environment:\n%s", out)
	}
	mustContain(t, "env list --all", cli.ok("env", "list", "--all"), id, "DELETED")
	mustContain(t, "env restore", cli.ok("env", "restore", "demo"), "restored environment demo")
	cli.json(&env, "env", "get", "demo")
	if env.IsDeleted || env.ID != id {
		t.Fatalf("after restore: %+v", env)
	}

	// pagination: a second environment, one per page, and a hint with the token
	cli.ok("env", "create", "second", "--cpu", "500m", "--memory", "512Mi", "--storage", "1Gi")
	stdout, stderr, err := cli.run("env", "list", "--limit", "1")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`--page-token (\S+)`).FindStringSubmatch(stderr)
	if m == nil || strings.Count(stdout, "env_") != 1 {
		t.Fatalf("env list --limit 1: want one row and a next-page hint\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	if out := cli.ok("env", "list", "--limit", "1", "--page-token", m[1]); strings.Count(out, "env_") != 1 || strings.Contains(out, strings.Fields(stdout[strings.Index(stdout, "env_"):])[0]) {
		t.Fatalf("second page repeats the first or is empty:\n%s", out)
	}

	// watch prints one line per event until its context ends
	testWatch(t, cli, "second")

	// errors say what is wrong
	err = cli.fails("env", "get", "no-such-env")
	mustContain(t, "unknown env", err.Error(), "not found", `"no-such-env"`)
	err = cli.fails("env", "get", "env_aaaaaaaaaaaaaaaaaaaaaaaaaa")
	if !strings.Contains(err.Error(), "not found") || strings.Count(err.Error(), "not found") != 1 {
		t.Fatalf("unknown env id: %q", err)
	}
	noToken := cliRunner{t: t, addr: addr}
	err = noToken.fails("env", "list")
	mustContain(t, "no token", err.Error(), "ATOLL_TOKEN")
	err = cli.fails("env", "create", "x", "--cpu", "lots")
	mustContain(t, "bad cpu", err.Error(), "--cpu")

	// help lists the flags
	mustContain(t, "env create --help", cli.ok("env", "create", "--help"), "--cpu", "--memory", "--ttl", "--label", "--project")

	// projects
	mustContain(t, "project create", cli.ok("project", "create", "backend", "--description", "the API"), "created project backend", "prj_")
	mustContain(t, "project list", cli.ok("project", "list"), "backend")
	mustContain(t, "project get", cli.ok("project", "get", "backend"), "backend", "the API")
	cli.ok("env", "create", "api-dev", "--project", "backend", "--cpu", "250m", "--memory", "256Mi", "--storage", "1Gi")
	out = cli.ok("env", "list", "--project", "backend")
	if !strings.Contains(out, "api-dev") || strings.Contains(out, "second") {
		t.Fatalf("env list --project backend:\n%s", out)
	}
	err = cli.fails("env", "list", "--project", "nope")
	mustContain(t, "unknown project", err.Error(), "no project named")

	// org
	mustContain(t, "org get", cli.ok("org", "get"), "RESOURCE", "QUOTA", "ALLOCATED")
	var org struct {
		Quota struct {
			CPU int `json:"cpu"`
		} `json:"quota"`
		DefaultEnvironmentQuota struct {
			CPU    int `json:"cpu"`
			Memory int `json:"memory"`
		} `json:"defaultEnvironmentQuota"`
	}
	cli.json(&org, "org", "update", "--cpu", "48", "--default-memory", "1Gi")
	if org.Quota.CPU != 48000 || org.DefaultEnvironmentQuota.Memory != 1024 || org.DefaultEnvironmentQuota.CPU == 0 {
		t.Fatalf("org update: %+v", org)
	}
	out = cli.ok("org", "create", "acme", "--cpu", "8", "--memory", "16Gi", "--storage", "100Gi")
	mustContain(t, "org create", out, "created organization acme", "atl_")

	// a read-only token cannot create environments
	var created struct {
		Secret string `json:"secret"`
		Token  struct {
			ID string `json:"id"`
		} `json:"token"`
	}
	cli.json(&created, "token", "create", "ci-read", "--scope", "env:read")
	if created.Secret == "" || created.Token.ID == "" {
		t.Fatalf("token create -o json: %+v", created)
	}
	ro := cliRunner{t: t, addr: addr, token: created.Secret}
	mustContain(t, "list with env:read", ro.ok("env", "list"), "demo")
	err = ro.fails("env", "create", "nope")
	mustContain(t, "create with env:read", err.Error(), "permission denied", "env:write", "--scope env:write")
	if strings.Count(err.Error(), "permission denied") != 1 {
		t.Fatalf("repeated code in %q", err)
	}
	mustContain(t, "token whoami", ro.ok("token", "whoami"), "ci-read", "env:read")
	mustContain(t, "token list", cli.ok("token", "list"), "ci-read")
	cli.ok("token", "revoke", created.Token.ID)
	ro.fails("env", "list")

	// operator
	out = cli.ok("operator", "raft", "list-peers")
	mustContain(t, "list-peers", out, "LEADER", "true")
	var peers struct {
		Peers []struct {
			Leader bool `json:"leader"`
		} `json:"peers"`
	}
	cli.json(&peers, "operator", "raft", "list-peers")
	leaders := 0
	for _, p := range peers.Peers {
		if p.Leader {
			leaders++
		}
	}
	if len(peers.Peers) != 1 || leaders != 1 {
		t.Fatalf("list-peers: want one peer, the leader: %+v", peers)
	}
	snap := filepath.Join(t.TempDir(), "state.snap")
	mustContain(t, "snapshot save", cli.ok("operator", "snapshot", "save", snap), "bytes", snap)
	fi, err := os.Stat(snap)
	if err != nil || fi.Size() == 0 {
		t.Fatalf("snapshot file: %v %v", fi, err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file mode %v, want 0600", fi.Mode().Perm())
	}

	// restoring the snapshot brings back what was deleted after it
	cli.ok("env", "delete", "second", "--force")
	mustContain(t, "snapshot restore", cli.ok("operator", "snapshot", "restore", snap), "restored snapshot", "raft index")
	cli.json(&env, "env", "get", "second")
	if env.IsDeleted {
		t.Fatalf("after snapshot restore: %+v", env)
	}

	// purge: only with --yes; a live environment, or a deleted one by name
	err = cli.fails("env", "delete", "second", "--purge")
	mustContain(t, "purge without --yes", err.Error(), "--yes", "cannot be undone")
	mustContain(t, "purge", cli.ok("env", "delete", "second", "--purge", "--yes"), "purged environment "+env.ID)
	err = cli.fails("env", "get", env.ID)
	mustContain(t, "get a purged environment", err.Error(), "not found")
	cli.ok("env", "delete", "api-dev")
	mustContain(t, "purge a deleted environment", cli.ok("env", "delete", "api-dev", "--purge", "--yes"), "purged environment")
	if out := cli.ok("env", "list", "--all"); strings.Contains(out, "api-dev") || strings.Contains(out, env.ID) {
		t.Fatalf("env list --all shows purged environments:\n%s", out)
	}

	if err := stop(); err != nil {
		t.Fatalf("atoll dev returned %v after cancel, want nil", err)
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantPos string
		wantCPU string
	}{
		{[]string{"demo", "--cpu", "2"}, "demo", "2"},
		{[]string{"--cpu", "2", "demo"}, "demo", "2"},
		{[]string{"a", "--cpu=3", "b"}, "a,b", "3"},
		{[]string{"--cpu", "1", "--", "--not-a-flag"}, "--not-a-flag", "1"},
		{[]string{}, "", ""},
	} {
		fs := newTestFlagSet()
		cpu := fs.String("cpu", "", "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || strings.Join(pos, ",") != tc.wantPos || *cpu != tc.wantCPU {
			t.Errorf("parseInterspersed(%q) = %q cpu=%q err=%v; want %q cpu=%q", tc.args, pos, *cpu, err, tc.wantPos, tc.wantCPU)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	var o, e bytes.Buffer
	err := run(context.Background(), []string{"env", "create"}, &o, &e)
	var u usageError
	if err == nil || !errorsAs(err, &u) {
		t.Fatalf("env create without a name: %v, want a usage error", err)
	}
	err = run(context.Background(), []string{"env", "bogus"}, &o, &e)
	if err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("env bogus: %v", err)
	}
	err = run(context.Background(), []string{"env", "list", "--nope"}, &o, &e)
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("env list --nope: %v", err)
	}
}

func testWatch(t *testing.T, cli cliRunner, name string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"env", "watch", name, "--addr", cli.addr, "--token", cli.token}, &out, &errOut)
	}()
	waitFor := func(sub string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(out.String(), sub) {
			select {
			case err := <-done:
				t.Fatalf("env watch ended early: %v\n%s%s", err, out.String(), errOut.String())
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("env watch: %q not seen within 15s:\n%s%s", sub, out.String(), errOut.String())
			}
		}
	}
	waitFor(name) // the first event describes the environment as it is
	cli.ok("env", "update", name, "--description", "watched")
	waitFor("updated")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("env watch returned %v after cancel, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("env watch did not return after cancel")
	}
}

// until rounds up, so a TTL just set reads as given.
func TestUntilRoundsUp(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		left time.Duration
		want string
	}{
		{8*time.Hour - 2*time.Second, "in 8h"},
		{48*time.Hour - time.Second, "in 2d"},
		{32*time.Hour - time.Minute, "in 32h"},
		{90 * time.Minute, "in 2h"},
		{30*time.Minute - time.Second, "in 30m"},
		{1500 * time.Millisecond, "in 2s"},
		{72*time.Hour - time.Minute, "in 3d"},
		{-time.Second, "expired"},
	} {
		if got := until(now.Add(c.left), now); got != c.want {
			t.Errorf("until(now+%v) = %q, want %q", c.left, got, c.want)
		}
	}
	if got := until(time.Time{}, now); got != "-" {
		t.Errorf("until(zero) = %q", got)
	}
}
