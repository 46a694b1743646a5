package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// DefaultCheckInterval is how often, at most, a Reloader stats its files.
const DefaultCheckInterval = 5 * time.Second

// ReloaderOptions are the files of a Reloader.
type ReloaderOptions struct {
	// CertFile and KeyFile (PEM, both or neither): the certificate this
	// process serves, and presents as a client where mutual TLS is used.
	CertFile, KeyFile string
	// CAFile (PEM, optional): the CA pool that verifies the peers.
	CAFile string
	// CheckInterval: the files are stat'ed at most this often (0:
	// DefaultCheckInterval; negative: never, only Reload re-reads them).
	CheckInterval time.Duration
	// Logger reports reloads and failed reloads (nil: slog.Default()).
	Logger *slog.Logger
}

// Reloader holds a certificate and a CA pool read from PEM files and
// re-reads them without a restart. The design:
//
//   - Reload re-reads every file now (atoll calls it on SIGHUP).
//   - A handshake that uses the Reloader (GetCertificate,
//     GetClientCertificate, GetConfigForClient, ClientConfig,
//     ClientCredentials) stats the files when the last check is older than
//     CheckInterval; a changed modification time or size re-reads them, in
//     that handshake. No goroutine: an idle process checks nothing, and
//     needs nothing newer.
//   - The certificate (with its key) and the CA are reloaded separately; one
//     that fails (unreadable, bad PEM, key not matching) keeps the previous
//     one and logs an error naming the file. A file changed by a
//     non-atomic rotation (certificate written, key not yet) is retried at
//     its next change.
//   - The configurations read the current certificate and pool per
//     handshake: new connections use the new files, established ones are
//     kept.
type Reloader struct {
	o   ReloaderOptions
	log *slog.Logger

	cur       atomic.Pointer[reloaderState]
	lastCheck atomic.Int64 // unix ns of the last stat

	mu     sync.Mutex // serializes reloads; guards stamps
	stamps map[string]fileStamp
}

type reloaderState struct {
	cert *tls.Certificate // nil without CertFile
	pool *x509.CertPool   // nil without CAFile
}

type fileStamp struct {
	mod  time.Time
	size int64
	ok   bool
}

// NewReloader reads the files once: unlike a reload, a failure here is
// returned.
func NewReloader(o ReloaderOptions) (*Reloader, error) {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("TLS: certificate and key go together")
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	r := &Reloader{o: o, log: o.Logger, stamps: map[string]fileStamp{}}
	if r.log == nil {
		r.log = slog.Default()
	}
	st := &reloaderState{}
	r.stampFiles()
	if o.CertFile != "" {
		c, err := loadKeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, err
		}
		st.cert = c
	}
	if o.CAFile != "" {
		p, err := loadCA(o.CAFile)
		if err != nil {
			return nil, err
		}
		st.pool = p
	}
	r.cur.Store(st)
	r.lastCheck.Store(time.Now().UnixNano())
	return r, nil
}

// Reload re-reads the files now. What fails keeps its previous value, is
// logged and returned; what succeeds applies to the next handshakes.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked("reload")
}

func (r *Reloader) reloadLocked(why string) error {
	r.stampFiles()
	old := r.cur.Load()
	st := &reloaderState{cert: old.cert, pool: old.pool}
	var errs []error
	if r.o.CertFile != "" {
		if c, err := loadKeyPair(r.o.CertFile, r.o.KeyFile); err != nil {
			r.log.Error("TLS certificate not reloaded: keeping the previous one", "cert", r.o.CertFile, "key", r.o.KeyFile, "err", err)
			errs = append(errs, err)
		} else {
			st.cert = c
			if c.Leaf != nil {
				r.log.Info("TLS certificate loaded", "cert", r.o.CertFile, "serial", c.Leaf.SerialNumber.String(), "not_after", c.Leaf.NotAfter, "trigger", why)
			}
		}
	}
	if r.o.CAFile != "" {
		if p, err := loadCA(r.o.CAFile); err != nil {
			r.log.Error("TLS CA not reloaded: keeping the previous one", "ca", r.o.CAFile, "err", err)
			errs = append(errs, err)
		} else {
			st.pool = p
			r.log.Info("TLS CA loaded", "ca", r.o.CAFile, "trigger", why)
		}
	}
	r.cur.Store(st)
	return errors.Join(errs...)
}

func (r *Reloader) files() []string {
	var fs []string
	for _, f := range []string{r.o.CertFile, r.o.KeyFile, r.o.CAFile} {
		if f != "" {
			fs = append(fs, f)
		}
	}
	return fs
}

func stat(f string) fileStamp {
	fi, err := os.Stat(f)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
}

// stampFiles records the files' stamps (before reading them, so a change
// made during the read is seen by the next check). r.mu held or r unshared.
func (r *Reloader) stampFiles() {
	for _, f := range r.files() {
		r.stamps[f] = stat(f)
	}
}

// maybeCheck stats the files if the last check is older than CheckInterval
// and reloads them if one changed. One handshake does the check; the
// concurrent ones go on with the current state.
func (r *Reloader) maybeCheck() {
	if r.o.CheckInterval < 0 {
		return
	}
	now := time.Now().UnixNano()
	last := r.lastCheck.Load()
	if now-last < int64(r.o.CheckInterval) || !r.lastCheck.CompareAndSwap(last, now) {
		return
	}
	if !r.mu.TryLock() {
		return // a reload is running
	}
	defer r.mu.Unlock()
	for _, f := range r.files() {
		if s := stat(f); s != r.stamps[f] {
			_ = r.reloadLocked("file changed: " + f)
			return
		}
	}
}

// Certificate is the current certificate (nil without CertFile).
func (r *Reloader) Certificate() *tls.Certificate {
	r.maybeCheck()
	return r.cur.Load().cert
}

// NotAfter is when the current certificate expires (zero without one), for
// an expiry metric: a rotation shows up as a later time.
func (r *Reloader) NotAfter() time.Time {
	c := r.Certificate()
	if c == nil || len(c.Certificate) == 0 {
		return time.Time{}
	}
	if c.Leaf != nil {
		return c.Leaf.NotAfter
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return time.Time{}
	}
	return leaf.NotAfter
}

// CAPool is the current CA pool (nil without CAFile).
func (r *Reloader) CAPool() *x509.CertPool {
	r.maybeCheck()
	return r.cur.Load().pool
}

func (r *Reloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := r.Certificate(); c != nil {
		return c, nil
	}
	return nil, errors.New("tlsutil: no certificate configured")
}

func (r *Reloader) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := r.Certificate(); c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil // none: the server decides
}

// ServerConfig is a server configuration serving the current certificate
// (GetCertificate) to clients that present none (gRPC, HTTPS).
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{GetCertificate: r.getCertificate, MinVersion: tls.VersionTLS12}
}

// MutualServerConfig is a server configuration that requires a client
// certificate verified by the CA pool (tls.RequireAndVerifyClientCert);
// GetConfigForClient applies the current certificate and pool to each
// handshake.
func (r *Reloader) MutualServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			r.maybeCheck()
			st := r.cur.Load()
			if st.cert == nil || st.pool == nil {
				return nil, errors.New("tlsutil: mutual TLS needs a certificate and a CA")
			}
			return &tls.Config{
				Certificates: []tls.Certificate{*st.cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    st.pool,
				MinVersion:   tls.VersionTLS12,
			}, nil
		},
	}
}

// ClientConfig is a client configuration for one dial (or a few): it
// trusts the current CA pool (the system's without CAFile) and, with
// presentCert, presents the current certificate when the server asks
// (GetClientCertificate). serverName, when set, is the name verified in
// the server's certificate (default: the host dialed). Take a new one per
// dial so a reloaded CA applies.
func (r *Reloader) ClientConfig(serverName string, presentCert bool) *tls.Config {
	r.maybeCheck()
	cfg := &tls.Config{RootCAs: r.cur.Load().pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if presentCert && r.o.CertFile != "" {
		cfg.GetClientCertificate = r.getClientCertificate
	}
	return cfg
}

// ClientCredentials are gRPC transport credentials that handshake with a
// fresh ClientConfig(serverName, false) per connection.
func (r *Reloader) ClientCredentials(serverName string) credentials.TransportCredentials {
	return &reloadingCreds{r: r, serverName: serverName}
}

type reloadingCreds struct {
	r          *Reloader
	serverName string
}

func (c *reloadingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.r.ClientConfig(c.serverName, false)).ClientHandshake(ctx, authority, conn)
}

func (c *reloadingCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("tlsutil: client credentials used to serve")
}

func (c *reloadingCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2", ServerName: c.serverName}
}

func (c *reloadingCreds) Clone() credentials.TransportCredentials {
	return &reloadingCreds{r: c.r, serverName: c.serverName}
}

//nolint:staticcheck // part of the interface
func (c *reloadingCreds) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}

func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s / key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	return &cert, nil
}

func loadCA(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("TLS CA " + caFile + ": no PEM certificate found")
	}
	return pool, nil
}
