package controlplane_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/internal/tlsutil"
	"github.com/atollhq/atoll/internal/tlsutil/tlstest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// TestTLSCluster: three servers over TLS (gRPC, HTTPS, raft, server-to-server
// dials): a write through a follower is forwarded, REST answers over HTTPS,
// and a plaintext client is refused.
func TestTLSCluster(t *testing.T) {
	files := tlstest.Generate(t)
	c := cptest.NewCluster(t, 3, cptest.TLS(files))
	ctls, err := tlsutil.ClientConfig(files.CA, "")
	if err != nil {
		t.Fatal(err)
	}
	dial := func(s *controlplane.Server, creds credentials.TransportCredentials) *grpc.ClientConn {
		conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	f := c.Followers()[0]
	ctx := cptest.Ctx(t, c.AdminToken)
	env, err := atollv1.NewEnvironmentServiceClient(dial(f, credentials.NewTLS(ctls))).CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "over-tls"})
	if err != nil {
		t.Fatalf("create through follower %s over TLS: %v", f.ID(), err)
	}
	c.WaitConverged(10 * time.Second)

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ctls}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", "https://"+f.HTTPAddr()+"/v1/environments/"+env.Id, nil)
	req.Header.Set("Authorization", "Bearer "+c.AdminToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("REST over HTTPS: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "over-tls") {
		t.Fatalf("REST over HTTPS: %d %s", resp.StatusCode, body)
	}
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get("https://" + f.HTTPAddr() + "/healthz"); err == nil {
		t.Fatal("HTTPS without the CA succeeded, want a certificate error")
	}

	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := atollv1.NewEnvironmentServiceClient(dial(f, insecure.NewCredentials())).ListEnvironments(pctx, &atollv1.ListEnvironmentsRequest{}); err == nil {
		t.Fatal("plaintext gRPC call to a TLS server succeeded")
	}
	// A client trusting another CA is refused too.
	other, err := tlsutil.ClientConfig(tlstest.Generate(t).CA, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := atollv1.NewEnvironmentServiceClient(dial(f, credentials.NewTLS(other))).ListEnvironments(pctx, &atollv1.ListEnvironmentsRequest{}); err == nil {
		t.Fatal("gRPC call trusting another CA succeeded")
	}

	// The raft port is mutual TLS: raft RPCs carry no token, so a client
	// without a certificate of the cluster's CA is refused by the server
	// (an alert, not a silent wait); one with such a certificate is kept
	// open, waiting for an RPC.
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	foreign := tlstest.Generate(t)
	foreignCert, err := tls.LoadX509KeyPair(foreign.Cert, foreign.Key)
	if err != nil {
		t.Fatal(err)
	}
	raftRead := func(certs []tls.Certificate) error {
		cfg := ctls.Clone()
		cfg.Certificates = certs
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", f.RaftAddr(), cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		return err
	}
	for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "another CA's certificate": {foreignCert}} {
		var ne net.Error
		if err := raftRead(certs); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("raft port with %s: %v, want the connection refused", name, err)
		}
	}
	var ne net.Error
	if err := raftRead([]tls.Certificate{cert}); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("raft port with the cluster's certificate: %v, want it kept open (read timeout)", err)
	}
}

func TestTLSConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cert, key, ca, want string
	}{
		{"c.pem", "", "ca.pem", "go together"},
		{"c.pem", "k.pem", "", "--tls-ca is required"},
		{"", "", "ca.pem", "needs --tls-cert"},
	} {
		cfg := controlplane.DefaultConfig()
		cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = tc.cert, tc.key, tc.ca
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cert=%q key=%q ca=%q: %v, want %q", tc.cert, tc.key, tc.ca, err, tc.want)
		}
	}
}

// TestTLSReload: a server's certificate files rotated, then ReloadTLS (what
// SIGHUP does): new gRPC, HTTPS and raft connections see the new
// certificate, the connection opened before keeps working, and a broken
// file keeps the new certificate.
func TestTLSReload(t *testing.T) {
	files := tlstest.Generate(t)
	c := cptest.NewCluster(t, 1, cptest.TLS(files))
	s := c.WaitLeader()
	ctls, err := tlsutil.ClientConfig(files.CA, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := cptest.Ctx(t, c.AdminToken)
	// grpcSerial opens a new gRPC connection and returns the serial of the
	// server's certificate it saw.
	grpcSerial := func() string {
		t.Helper()
		conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(ctls)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var p peer.Peer
		if _, err := atollv1.NewEnvironmentServiceClient(conn).ListEnvironments(ctx, &atollv1.ListEnvironmentsRequest{}, grpc.Peer(&p)); err != nil {
			t.Fatalf("gRPC over TLS: %v", err)
		}
		return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber.String()
	}
	tlsSerial := func(addr string, cfg *tls.Config) string {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			t.Fatalf("TLS to %s: %v", addr, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	old, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	raftCfg := ctls.Clone()
	raftCfg.Certificates = []tls.Certificate{old}

	if got := grpcSerial(); got != "2" {
		t.Fatalf("serial before the rotation: %s, want 2", got)
	}
	keep, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(ctls)))
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	before := atollv1.NewEnvironmentServiceClient(keep) // a connection kept across the reload
	if _, err := before.ListEnvironments(ctx, &atollv1.ListEnvironmentsRequest{}); err != nil {
		t.Fatal(err)
	}

	tlstest.Reissue(t, files, 3)
	if err := s.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	if got := grpcSerial(); got != "3" {
		t.Fatalf("gRPC serial after the rotation: %s, want 3", got)
	}
	if got := tlsSerial(s.HTTPAddr(), ctls); got != "3" {
		t.Fatalf("HTTPS serial after the rotation: %s, want 3", got)
	}
	// The raft port still requires a client certificate of the CA (the
	// old one still is) and serves the new one.
	if got := tlsSerial(s.RaftAddr(), raftCfg); got != "3" {
		t.Fatalf("raft serial after the rotation: %s, want 3", got)
	}
	if _, err := before.CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "after-reload"}); err != nil {
		t.Fatalf("write on the connection opened before the reload: %v", err)
	}
	// REST goes through the gateway's own gRPC connection to the server.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ctls}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", "https://"+s.HTTPAddr()+"/v1/environments", nil)
	req.Header.Set("Authorization", "Bearer "+c.AdminToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("REST after the reload: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "after-reload") {
		t.Fatalf("REST after the reload: %d %s", resp.StatusCode, body)
	}
	// The expiry metric follows the certificate served.
	pemBytes, err := os.ReadFile(files.Cert)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	mresp, err := hc.Get("https://" + s.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if want := fmt.Sprintf("atoll_tls_certificate_expiry_timestamp_seconds %s", strconv.FormatFloat(float64(leaf.NotAfter.Unix()), 'g', -1, 64)); !strings.Contains(string(mbody), want) {
		t.Fatalf("metrics lack %q", want)
	}

	// A broken key: the reload fails naming it, the server keeps serving 3.
	if err := os.WriteFile(files.Key, []byte("broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadTLS(); err == nil || !strings.Contains(err.Error(), files.Key) {
		t.Fatalf("ReloadTLS with a broken key: %v, want an error naming %s", err, files.Key)
	}
	if got := grpcSerial(); got != "3" {
		t.Fatalf("gRPC serial after a failed reload: %s, want 3", got)
	}
}
