package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func runCLI(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = run(ctx, args, &o, &e)
	return o.String(), e.String(), err
}

var versionRe = regexp.MustCompile(`^atoll \S+ \(commit [^;]+; go1\.\S+ \w+/\w+\)\n$`)

func TestVersionAndHelp(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		out, errOut, err := runCLI(args...)
		if err != nil || !versionRe.MatchString(out) {
			t.Errorf("atoll %s: %v, stdout %q stderr %q; want one line like \"atoll v1 (commit abc; go1.x os/arch)\"", args[0], err, out, errOut)
		}
	}
	for _, args := range [][]string{
		{"server", "--help"}, {"server", "-h"}, {"dev", "--help"}, {"agent", "--help"}, {"version", "--help"},
		{"env", "list", "--help"}, {"operator", "raft", "--help"}, {"--help"},
	} {
		out, errOut, err := runCLI(args...)
		name := strings.Join(args, " ")
		if err != nil {
			t.Errorf("atoll %s: %v, want exit 0", name, err)
		}
		if !strings.Contains(out, "usage: atoll") {
			t.Errorf("atoll %s: no usage on stdout:\n%s", name, out)
		}
		if strings.Contains(out+errOut, "help requested") {
			t.Errorf("atoll %s prints the flag package's \"help requested\":\n%s%s", name, out, errOut)
		}
	}
	out, _, _ := runCLI("server", "--help")
	mustContain(t, "server --help", out, "--public-domain", "--public-port", "--public-scheme", "--join", "--bootstrap", "--rollout-min-healthy")
	if _, _, err := runCLI("server", "--bootstrap", "--data-dir", t.TempDir(), "--rollout-min-healthy", "-1s"); err == nil || !strings.Contains(err.Error(), "--rollout-min-healthy -1s must not be negative") {
		t.Fatalf("server --rollout-min-healthy -1s: %v", err)
	}
	if _, _, err := runCLI("agent", "--servers", "127.0.0.1:1", "--join-token", "x", "--data-dir", t.TempDir(), "--shutdown-delay", "-1s"); err == nil || !strings.Contains(err.Error(), "--shutdown-delay -1s must be between 0 and 5m") {
		t.Fatalf("agent --shutdown-delay -1s: %v", err)
	}
	out, _, _ = runCLI("dev", "--help")
	mustContain(t, "dev --help", out, "--public-domain", "--router-addr")
	// Group help: names and descriptions in aligned columns, never run together.
	out, _, _ = runCLI("operator", "raft", "--help")
	for _, sub := range []string{"list-peers", "remove-peer"} {
		if !regexp.MustCompile(`(?m)^  ` + sub + `  +\S`).MatchString(out) {
			t.Errorf("operator raft --help: %q not followed by a column gap:\n%s", sub, out)
		}
	}
	// A bad flag is a usage error pointing at --help, printed once with one "atoll:".
	_, _, err := runCLI("server", "--nope")
	var u usageError
	if err == nil || !errorsAs(err, &u) || !strings.Contains(err.Error(), "atoll server --help") {
		t.Fatalf("server --nope: %v", err)
	}
	_, _, err = runCLI("--bogus")
	if err == nil || strings.HasPrefix(errorLine(err), "atoll: atoll") || !strings.HasPrefix(errorLine(err), "atoll") {
		t.Fatalf("atoll --bogus prints %q", errorLine(err))
	}
	if got := errorLine(usagef("no API token")); got != "atoll: no API token" {
		t.Fatalf("errorLine = %q", got)
	}
}

func TestUnavailableHints(t *testing.T) {
	local := (&clientOpts{addr: defaultAddr}).unavailableHint("connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:7071: connect: connection refused\"")
	mustContain(t, "default address hint", local, "is an atoll server running at "+defaultAddr, "atoll dev")
	remote := (&clientOpts{addr: "10.0.0.1:7071"}).unavailableHint("connection refused")
	mustContain(t, "cluster address hint", remote, "--addr/ATOLL_ADDR")
	if strings.Contains(remote, "atoll dev") {
		t.Fatalf("a cluster address is told about atoll dev: %q", remote)
	}
}

func TestServerPublicFlags(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"server", "--bootstrap", "--data-dir", t.TempDir(), "--raft-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--public-domain", "apps.example.test", "--public-port", "80"}, &out, &errOut)
	}()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(out.String(), "apps at") {
		select {
		case err := <-done:
			t.Fatalf("server exited: %v\n%s%s", err, out.String(), errOut.String())
		case <-deadline:
			t.Fatalf("no banner within 30s:\n%s%s", out.String(), errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	mustContain(t, "server banner", out.String(), "apps at http://<app>-<env>.apps.example.test/")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("server after cancel: %v", err)
	}
	_, _, err := runCLI("server", "--bootstrap", "--data-dir", t.TempDir(), "--public-domain", "https://apps.example.test")
	if err == nil || !strings.Contains(err.Error(), "without a scheme (use --public-scheme)") {
		t.Fatalf("--public-domain with a scheme: %v", err)
	}
}

// `atoll server --join` with a token the cluster refuses exits with the reason.
func TestServerJoinRefusedExits(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	err := run(ctx, []string{"server", "--join", c.Servers[0].GRPCAddr(), "--token", "atl_bogus-token", "--data-dir", t.TempDir(),
		"--raft-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, &out, &errOut)
	if ctx.Err() != nil {
		t.Fatalf("server with a refused join still running after 30s:\n%s%s", out.String(), errOut.String())
	}
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "unknown or revoked") {
		t.Fatalf("refused join: %v", err)
	}
}

// Operating a cluster: list-peers with and without a leader, drain of the
// only node, a deleted environment, a removed server.
func TestClusterOperatorCLI(t *testing.T) {
	c := cptest.NewCluster(t, 3)
	l := c.WaitLeader()
	cli := cliRunner{t: t, addr: l.GRPCAddr(), token: c.AdminToken}
	out := cli.ok("operator", "raft", "list-peers")
	mustContain(t, "list-peers", out, "LEADER", "true", l.ID())

	agent := c.NewFakeAgent(cptest.FakeAgentConfig{Name: "only-host"})
	out = cli.ok("node", "drain", "only-host")
	mustContain(t, "drain of the only node", out, "no other ready node", "nowhere to move", "atoll node undrain only-host")
	out = cli.ok("node", "undrain", agent.NodeID())
	mustContain(t, "undrain", out, "takes new instances again")

	cli.ok("env", "create", "gone-env")
	cli.ok("env", "delete", "gone-env")
	err := cli.fails("app", "get", "web", "--env", "gone-env")
	mustContain(t, "app get in a deleted environment", err.Error(), `"gone-env" is deleted`, "atoll env restore gone-env")
	err = cli.fails("app", "get", "web", "--env", "never-was")
	mustContain(t, "app get in an unknown environment", err.Error(), `no environment named "never-was"`)

	gone := c.Followers()[0]
	cli.ok("operator", "raft", "remove-peer", gone.ID())
	cptest.WaitFor(t, 20*time.Second, "the removed server to lose the leader", func() bool {
		_, leader := gone.Raft().LeaderWithID()
		cf := gone.Raft().GetConfiguration()
		if cf.Error() != nil || leader != "" {
			return false
		}
		for _, s := range cf.Configuration().Servers {
			if s.ID == raft.ServerID(gone.ID()) {
				return false
			}
		}
		return true
	})
	goneCLI := cliRunner{t: t, addr: gone.GRPCAddr(), token: c.AdminToken}
	stdout, _, err := goneCLI.run("operator", "raft", "list-peers")
	if err == nil {
		t.Fatalf("list-peers on a server without a leader exited 0:\n%s", stdout)
	}
	mustContain(t, "list-peers without a leader", err.Error(), "no leader", gone.ID(), "not in the raft configuration")
	mustContain(t, "list-peers without a leader prints the peers it knows", stdout, "ID", l.ID())
	err = goneCLI.fails("env", "list")
	mustContain(t, "a request to a removed server", err.Error(), "not in the cluster's raft configuration", "--join")
	if strings.Contains(err.Error(), "cannot reach") || strings.Contains(err.Error(), "atoll dev") {
		t.Fatalf("a server that answered is reported unreachable: %v", err)
	}
	err = cliRunner{t: t, addr: "127.0.0.1:1", token: c.AdminToken}.fails("env", "list")
	mustContain(t, "unreachable address", err.Error(), "cannot reach 127.0.0.1:1", "--addr/ATOLL_ADDR")
}

func TestPeersProblem(t *testing.T) {
	peers := []*atollv1.RaftPeer{{Id: "a", Voter: true}, {Id: "b", Voter: true}, {Id: "c", Voter: true}}
	err := peersProblem(peers, "a", "10.0.0.1:7071")
	if err == nil {
		t.Fatal("no leader among the peers, yet no error")
	}
	mustContain(t, "no quorum", err.Error(), "no leader", "server a (at 10.0.0.1:7071)", "majority of the 3 voters")
	if strings.Contains(err.Error(), "removed") {
		t.Fatalf("a member is told it was removed: %v", err)
	}
	mustContain(t, "removed", peersProblem(peers, "z", "x:1").Error(), "not in the raft configuration")
	mustContain(t, "empty", peersProblem(nil, "", "x:1").Error(), "no raft configuration")
	peers[1].Leader = true
	if err := peersProblem(peers, "a", "x:1"); err != nil {
		t.Fatalf("with a leader: %v", err)
	}
}

// app create --wait with a health check waits for the check and says so:
// "✓ healthy" once the new instance passes it (journey 1).
func TestWaitHealthy(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	agent := c.NewFakeAgent(cptest.FakeAgentConfig{Name: "host-1"})
	cli := cliRunner{t: t, addr: c.Servers[0].GRPCAddr(), token: c.AdminToken}
	cli.ok("env", "create", "demo", "--cpu", "2", "--memory", "2Gi", "--storage", "1Gi")
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, _, err := cli.run("app", "create", "web", "--env", "demo", "--image", "hello:1", "--cpu", "100m", "--memory", "64Mi",
			"--port", "8080", "--health-path", "/healthz", "--wait", "--timeout", "60s")
		done <- result{out, err}
	}()
	var inst string
	c.WaitState(30*time.Second, "the instance running", func(tx *state.Txn) bool {
		all, _ := tx.AllInstances()
		for _, in := range all {
			if in.State == atollv1.InstanceState_INSTANCE_RUNNING {
				inst = in.Id
				return true
			}
		}
		return false
	})
	select {
	case r := <-done:
		t.Fatalf("--wait returned before the health check passed: %v\n%s", r.err, r.out)
	default:
	}
	agent.SetHealth(inst, true, "")
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("app create --wait: %v\n%s", r.err, r.out)
		}
		mustContain(t, "app create --wait with a health check", r.out, "✓ started", "✓ healthy (1/1)")
	case <-time.After(60 * time.Second):
		t.Fatal("app create --wait did not return after the instance became healthy")
	}
}
