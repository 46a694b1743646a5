package controlplane

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is raft's TCP stream layer over a listener we own, so ":0"
// binds work and the bound address is known before raft starts. With TLS
// (serverTLS and clientTLS set) it accepts and dials mutual TLS: raft RPCs
// carry no token, so a peer must present a certificate signed by the CA
// (the server's own certificate, which therefore needs the client auth
// extended key usage, or none), and servers dial each other with theirs.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	clientTLS *tls.Config
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(lis net.Listener, advertise net.Addr, serverTLS, clientTLS *tls.Config) *streamLayer {
	l := &streamLayer{Listener: lis, advertise: advertise}
	if serverTLS != nil && clientTLS != nil {
		srv := serverTLS.Clone()
		srv.ClientAuth, srv.ClientCAs = tls.RequireAndVerifyClientCert, clientTLS.RootCAs
		cli := clientTLS.Clone()
		cli.Certificates = serverTLS.Certificates
		l.Listener, l.clientTLS = tls.NewListener(lis, srv), cli
	}
	return l
}

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.clientTLS != nil {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: s.clientTLS}
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
