package main

import "testing"

func TestCLIEnvLifecycleExtras(t *testing.T) {
	addr, token, stop := devServer(t)
	defer stop()
	cli := cliRunner{t: t, addr: addr, token: token}
	cli.ok("env", "create", "life")
	out := cli.ok("env", "extend", "life", "--by", "2h")
	mustContain(t, "extend", out, "now expires at")
	out = cli.ok("env", "health", "life")
	mustContain(t, "health", out, "no_endpoints")
	out = cli.ok("env", "reconcile", "life")
	mustContain(t, "reconcile", out, "RUNNING")
	out = cli.ok("env", "cleanup-failed")
	mustContain(t, "cleanup", out, "deleted 0 environment(s)")
	if err := cli.fails("env", "extend", "life", "--by", "banana"); err == nil {
		t.Fatal("bad duration accepted")
	}
}
