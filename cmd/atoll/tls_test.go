package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/atollhq/atoll/internal/tlsutil"
	"github.com/atollhq/atoll/internal/tlsutil/tlstest"
)

var serverBannerRe = regexp.MustCompile(`API (https?)://\S+ \(REST\) (\S+) \(gRPC\)`)

// TestCLIOverTLS runs `atoll server --bootstrap` with TLS and the CLI
// against it: with --tls-ca (or ATOLL_CACERT) it works, without it the
// error says to pass the CA.
func TestCLIOverTLS(t *testing.T) {
	files := tlstest.Generate(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"server", "--bootstrap", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
			"--tls-cert", files.Cert, "--tls-key", files.Key, "--tls-ca", files.CA}, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("atoll server did not stop within 30s of cancel")
		}
	})
	var addr, token string
	deadline := time.Now().Add(30 * time.Second)
	for token == "" {
		if m := serverBannerRe.FindStringSubmatch(out.String()); m != nil {
			if m[1] != "https" {
				t.Fatalf("banner of a TLS server: %s", out.String())
			}
			addr = m[2]
			if b, err := os.ReadFile(filepath.Join(dir, "admin.token")); err == nil {
				token = strings.TrimSpace(string(b))
			}
		}
		select {
		case err := <-done:
			t.Fatalf("atoll server exited early: %v\nstderr:\n%s", err, errOut.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner and admin token within 30s\nstdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
		}
	}
	cli := cliRunner{t: t, addr: addr, token: token}
	cli.ok("env", "create", "secure", "--tls-ca", files.CA)
	mustContain(t, "env list over TLS", cli.ok("env", "list", "--tls-ca", files.CA), "secure")

	t.Setenv("ATOLL_CACERT", files.CA)
	mustContain(t, "env list with ATOLL_CACERT", cli.ok("env", "list"), "secure")
	t.Setenv("ATOLL_CACERT", "")

	err := cli.fails("env", "list")
	t.Logf("plaintext CLI against a TLS server: %v", err)
	mustContain(t, "plaintext CLI against a TLS server", err.Error(), "cannot reach ", "--tls-ca")

	err = cli.fails("env", "list", "--tls-ca", tlstest.Generate(t).CA)
	t.Logf("CLI trusting another CA: %v", err)
	mustContain(t, "CLI trusting another CA", err.Error(), "certificate")

	err = cli.fails("env", "list", "--tls-ca", filepath.Join(dir, "missing.pem"))
	mustContain(t, "missing CA file", err.Error(), "--tls-ca")

	// The server dials the agent's log service over TLS with its CA.
	stls, err := tlsutil.ServerConfig(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	ctls, err := tlsutil.ClientConfig(files.CA, "")
	if err != nil {
		t.Fatal(err)
	}
	miniAgentCreds(t, addr, token, "host-1", credentials.NewTLS(ctls), grpc.Creds(credentials.NewTLS(stls)))
	t.Setenv("ATOLL_CACERT", files.CA)
	cli.ok("app", "create", "web", "--env", "secure", "--image", "hello:1", "--cpu", "100m", "--memory", "128Mi", "--wait")
	mustContain(t, "app logs over TLS", cli.ok("app", "logs", "web", "--env", "secure"), "listening on :80", "GET / 200")
}

// TestServerTLSFlagsValidated: a certificate without a CA is refused.
func TestServerTLSFlagsValidated(t *testing.T) {
	files := tlstest.Generate(t)
	var out, errOut syncBuffer
	err := run(context.Background(), []string{"server", "--bootstrap", "--data-dir", t.TempDir(), "--tls-cert", files.Cert, "--tls-key", files.Key}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "--tls-ca is required") {
		t.Fatalf("server with --tls-cert and no --tls-ca: %v", err)
	}
}
