package tlsutil_test

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/internal/tlsutil"
	"github.com/atollhq/atoll/internal/tlsutil/tlstest"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve accepts TLS connections with cfg; each completed handshake gets
// one byte, so a client refused by the server sees an error on Read.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
				if tc.Handshake() == nil {
					_, _ = tc.Write([]byte{1})
				}
			}()
		}
	}()
	return lis.Addr().String()
}

// handshake dials addr and returns the serial of the server's certificate.
func handshake(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func wantSerial(t *testing.T, addr string, cfg *tls.Config, want string) {
	t.Helper()
	got, err := handshake(addr, cfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if got != want {
		t.Fatalf("server certificate serial %s, want %s", got, want)
	}
}

// reloadingServer serves TLS with a Reloader of fresh files (serial 2) and
// returns them, the reloader, its address, a client trusting the CA and the
// reloader's log.
func reloadingServer(t *testing.T, check time.Duration) (tlstest.Files, *tlsutil.Reloader, string, *tls.Config, *syncBuf) {
	t.Helper()
	f := tlstest.Generate(t)
	logs := &syncBuf{}
	r, err := tlsutil.NewReloader(tlsutil.ReloaderOptions{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA, CheckInterval: check,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r.ServerConfig())
	client, err := tlsutil.ClientConfig(f.CA, "")
	if err != nil {
		t.Fatal(err)
	}
	wantSerial(t, addr, client, "2")
	return f, r, addr, client, logs
}

func TestTLSReloaderReload(t *testing.T) {
	f, r, addr, client, logs := reloadingServer(t, -1)

	// Cert B: not seen until Reload (no stat with CheckInterval < 0).
	tlstest.Reissue(t, f, 3)
	wantSerial(t, addr, client, "2")
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	wantSerial(t, addr, client, "3")

	// A broken certificate keeps B and names the file.
	if err := os.WriteFile(f.Cert, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := r.Reload()
	if err == nil || !strings.Contains(err.Error(), f.Cert) {
		t.Fatalf("Reload of a broken certificate: %v, want an error naming %s", err, f.Cert)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), f.Cert) {
		t.Fatalf("no error logged naming %s:\n%s", f.Cert, logs.String())
	}
	wantSerial(t, addr, client, "3")

	// A key that does not match the certificate is refused too.
	other := tlstest.Generate(t)
	tlstest.Reissue(t, f, 4)
	b, _ := os.ReadFile(other.Key)
	if err := os.WriteFile(f.Key, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), f.Key) {
		t.Fatalf("Reload with a mismatched key: %v, want an error naming %s", err, f.Key)
	}
	wantSerial(t, addr, client, "3")
}

func TestTLSReloaderModTime(t *testing.T) {
	f, _, addr, client, logs := reloadingServer(t, 50*time.Millisecond)

	// Rewritten files (modification time moved on, whatever the file
	// system's granularity): the first handshake after CheckInterval
	// reloads them and serves B.
	tlstest.Reissue(t, f, 3)
	future := time.Now().Add(time.Minute)
	for _, p := range []string{f.Cert, f.Key} {
		if err := os.Chtimes(p, future, future); err != nil {
			t.Fatal(err)
		}
	}
	awaitTLS(t, "the rewritten certificate served", func() bool {
		got, err := handshake(addr, client)
		return err == nil && got == "3"
	})

	// A broken file, noticed the same way, keeps B and logs the file.
	if err := os.WriteFile(f.Cert, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	future = future.Add(time.Minute)
	if err := os.Chtimes(f.Cert, future, future); err != nil {
		t.Fatal(err)
	}
	// Handshakes go on (each may be the one that notices) until the
	// failed reload is logged; the certificate served stays B.
	awaitTLS(t, "an error logged naming "+f.Cert, func() bool {
		wantSerial(t, addr, client, "3")
		return strings.Contains(logs.String(), "level=ERROR") && strings.Contains(logs.String(), f.Cert)
	})
	wantSerial(t, addr, client, "3")
}

// awaitTLS polls cond (each poll a handshake) for up to 10 s.
func awaitTLS(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // poll interval; the condition is what is awaited
	}
}

// TestTLSReloaderCA: a CA file rewritten with a new CA applies to new
// connections, on the mutual TLS side (client certificates) and the client
// side (server certificates).
func TestTLSReloaderCA(t *testing.T) {
	f, g := tlstest.Generate(t), tlstest.Generate(t) // two CAs
	srv, err := tlsutil.NewReloader(tlsutil.ReloaderOptions{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA, CheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv.MutualServerConfig())
	// A peer of CA g: trusts f's CA (to verify the server) and presents
	// its own certificate.
	peerCA := t.TempDir() + "/ca.pem"
	b, _ := os.ReadFile(f.CA)
	if err := os.WriteFile(peerCA, b, 0o600); err != nil {
		t.Fatal(err)
	}
	peer, err := tlsutil.NewReloader(tlsutil.ReloaderOptions{CertFile: g.Cert, KeyFile: g.Key, CAFile: peerCA, CheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(addr, peer.ClientConfig("", false)); err == nil {
		t.Fatal("mutual TLS without a client certificate succeeded")
	}
	if _, err := handshake(addr, peer.ClientConfig("", true)); err == nil {
		t.Fatal("mutual TLS with a certificate of an untrusted CA succeeded")
	}
	// The server's CA file now holds both CAs.
	fb, _ := os.ReadFile(f.CA)
	gb, _ := os.ReadFile(g.CA)
	if err := os.WriteFile(f.CA, append(fb, gb...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	wantSerial(t, addr, peer.ClientConfig("", true), "2")

	// Client side: the peer's CA file replaced by g's alone no longer
	// trusts the server.
	if err := os.WriteFile(peerCA, gb, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := peer.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(addr, peer.ClientConfig("", true)); err == nil {
		t.Fatal("handshake with a server of a CA no longer trusted succeeded")
	}
}
