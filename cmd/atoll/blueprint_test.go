package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCLIBlueprints(t *testing.T) {
	addr, token := devServerNoAgent(t)
	cli := cliRunner{t: t, addr: addr, token: token}
	f := filepath.Join(t.TempDir(), "bp.json")
	if err := os.WriteFile(f, []byte(`{"name":"shop","variables":[{"name":"region","required":true},{"name":"tag","default":"1.25"}],
		"variableSets":[{"name":"cfg","variables":{"REGION":{"value":"${region}"}}}],
		"apps":[{"name":"web","source":{"image":{"name":"nginx","tag":"${tag}"}},"resourceRequests":{"cpu":"100m","memory":"64Mi"},
		"variableSetMounts":[{"varSetNameRef":"cfg"}]}],"defaultTtl":"24h"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := cli.ok("blueprint", "create", "-f", f)
	mustContain(t, "create", out, "created blueprint shop (bp_", "1 app(s)")
	out = cli.ok("blueprint", "list")
	mustContain(t, "list", out, "NAME", "shop", "region*,tag")
	out = cli.ok("blueprint", "get", "shop")
	mustContain(t, "get", out, "VARIABLE", "region", "app web: nginx:${tag}")
	err := cli.fails("env", "create", "eu", "--blueprint", "shop")
	mustContain(t, "missing var", err.Error(), "region")
	cli.ok("env", "create", "eu", "--blueprint", "shop", "--var", "region=eu-central", "--var", "tag=1.27")
	out = cli.ok("app", "get", "web", "--env", "eu")
	mustContain(t, "app", out, "nginx:1.27")
	out = cli.ok("blueprint", "delete", "shop")
	mustContain(t, "delete", out, "deleted blueprint shop")
	cli.ok("env", "get", "eu")
}
