package controlplane

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/atollhq/atoll/internal/tlsutil"
)

// streamLayer is raft's TCP stream layer over a listener we own, so ":0"
// binds work and the bound address is known before raft starts. With TLS
// (certs set) it accepts and dials mutual TLS: raft RPCs carry no token, so
// a peer must present a certificate signed by the CA
// (tls.RequireAndVerifyClientCert; the server's own certificate, which
// therefore needs the client auth extended key usage, or none), and servers
// dial each other with theirs. The certificate and CA are the current ones
// of certs at each handshake (reloadable).
type streamLayer struct {
	net.Listener
	advertise net.Addr
	certs     *tlsutil.Reloader
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(lis net.Listener, advertise net.Addr, certs *tlsutil.Reloader) *streamLayer {
	l := &streamLayer{Listener: lis, advertise: advertise}
	if certs != nil {
		l.Listener, l.certs = tls.NewListener(lis, certs.MutualServerConfig()), certs
	}
	return l
}

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.certs != nil {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: s.certs.ClientConfig("", true)}
		return d.Dial("tcp", string(addr))
	}
	return net.DialTimeout("tcp", string(addr), timeout)
}

func (s *streamLayer) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.Listener.Addr()
}
