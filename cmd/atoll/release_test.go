package main

import (
	"strings"
	"testing"
)

func TestCLIReleases(t *testing.T) {
	addr, token := devServerNoAgent(t)
	cli := cliRunner{t: t, addr: addr, token: token}
	cli.ok("env", "create", "staging")
	out := cli.ok("release", "create", "api", "--version", "1.0.0", "--image", "example/api:v1", "--port", "8080", "--public")
	mustContain(t, "release create", out, "created release 1.0.0 of api")
	cli.ok("release", "create", "api", "--version", "2.0.0", "--image", "example/api:v2", "--cpu", "200m")
	out = cli.ok("release", "list", "--app", "api")
	mustContain(t, "release list", out, "VERSION", "2.0.0", "example/api:v2")
	if strings.Index(out, "2.0.0") > strings.Index(out, "1.0.0") {
		t.Fatalf("release list is not newest first:\n%s", out)
	}
	out = cli.ok("release", "deploy", "api@1.0.0", "--env", "staging")
	mustContain(t, "deploy v1", out, "deployed", "deployment dep_")
	out = cli.ok("release", "deploy", "api@2.0.0", "--env", "staging")
	mustContain(t, "deploy v2", out, "previous release rel_")
	out = cli.ok("app", "get", "api", "--env", "staging")
	mustContain(t, "app get", out, "example/api:v2")
	out = cli.ok("release", "history", "--env", "staging")
	mustContain(t, "history", out, "WHEN", "WHO", "ACTION", "PREVIOUS", "2.0.0 (rel_", "1.0.0 (rel_")
	out = cli.ok("release", "undeploy", "api", "--env", "staging")
	mustContain(t, "undeploy", out, "undeployed")
	out = cli.ok("release", "history", "--env", "staging")
	mustContain(t, "history after undeploy", out, "undeploy")
	err := cli.fails("release", "undeploy", "api", "--env", "staging")
	mustContain(t, "undeploy again", err.Error(), "not found")
	err = cli.fails("release", "create", "api", "--version", "1.0.0", "--image", "example/api:v1")
	mustContain(t, "duplicate", strings.ToLower(err.Error()), "already exists")
	out = cli.ok("release", "--help")
	mustContain(t, "help", out, "deploy", "undeploy", "history")
}
