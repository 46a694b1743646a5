package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// varset set/unset and file update: the new version, the apps that roll,
// secrets masked, refusals explained.
func TestCLIUpdateVarsetAndFile(t *testing.T) {
	t.Setenv("ATOLL_TOKEN", "")
	t.Setenv("ATOLL_ADDR", "")
	addr, token := devServerNoAgent(t)
	cli := cliRunner{t: t, addr: addr, token: token}
	cli.ok("env", "create", "demo", "--cpu", "2", "--memory", "2Gi", "--storage", "10Gi")
	cli.ok("varset", "create", "cfg", "--env", "demo", "--var", "GREETING=hi", "--var", "OLD=x")
	cli.ok("varset", "create", "unused", "--env", "demo", "--var", "A=1")
	one := filepath.Join(t.TempDir(), "conf")
	if err := os.WriteFile(one, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli.ok("file", "create", "conf", "--env", "demo", "--from-file", one) // as file update takes it
	cli.ok("app", "create", "web", "--env", "demo", "--image", "hello:1", "--cpu", "100m", "--memory", "64Mi", "--varset", "cfg", "--file", "conf:/etc/conf")

	out := cli.ok("varset", "set", "cfg", "GREETING=hello", "--secret", "API_KEY=s3cret", "--env", "demo")
	mustContain(t, "varset set", out, "updated variable set cfg to version 2", "rolling 1 app(s) onto it: web")
	out = cli.ok("varset", "get", "cfg", "--env", "demo")
	mustContain(t, "varset get", out, "Version:", "2", "API_KEY", "********", "GREETING", "hello")
	if strings.Contains(out, "s3cret") {
		t.Fatalf("varset get shows a secret value:\n%s", out)
	}
	if err := cli.fails("varset", "set", "cfg", "--env", "demo"); !strings.Contains(err.Error(), "nothing to set") {
		t.Fatalf("varset set without variables: %v", err)
	}
	mustContain(t, "varset unset", cli.ok("varset", "unset", "cfg", "OLD", "--env", "demo"), "version 3", "web")
	if err := cli.fails("varset", "unset", "cfg", "OLD", "--env", "demo"); !strings.Contains(err.Error(), "remove[0]") {
		t.Fatalf("unset of a missing key: %v, want a violation naming remove[0]", err)
	}
	if err := cli.fails("varset", "set", "cfg", "X=1", "--if-version", "1", "--env", "demo"); !strings.Contains(strings.ToLower(err.Error()), "version") {
		t.Fatalf("stale --if-version: %v", err)
	}
	mustContain(t, "varset set, nothing mounts it", cli.ok("varset", "set", "unused", "A=2", "--env", "demo"), "version 2", "nothing rolls")
	mustContain(t, "varset set, same value", cli.ok("varset", "set", "unused", "A=2", "--env", "demo"), "unchanged (version 2)")
	if err := cli.fails("varset", "set", "cfg", "NOEQUALS", "--env", "demo"); !strings.Contains(err.Error(), "KEY=VALUE") {
		t.Fatalf("bad KEY=VALUE: %v", err)
	}

	path := filepath.Join(t.TempDir(), "conf")
	if err := os.WriteFile(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "file update", cli.ok("file", "update", "conf", "--from-file", path, "--env", "demo"), "updated file conf to version 2", "web", "keep the old content")
	if got := cli.ok("file", "get", "conf", "--env", "demo", "--content"); got != "two" {
		t.Fatalf("file content after update %q", got)
	}
	// Three updates of what web mounts: three new spec versions.
	var app struct {
		SpecVersion string `json:"specVersion"`
	}
	cli.json(&app, "app", "get", "web", "--env", "demo")
	if app.SpecVersion != "4" {
		t.Fatalf("web's spec version %q after three updates of its mounts, want 4", app.SpecVersion)
	}
}
