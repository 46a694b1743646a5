// Package tlsutil loads the TLS configurations of atoll's opt-in TLS: a
// server side from a certificate and key, a client side from a CA.
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ServerConfig loads a certificate and its key (PEM files) into a server
// configuration (TLS 1.2 at least).
func ServerConfig(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s / key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// ClientConfig returns a client configuration trusting only the CA
// certificates in caFile (PEM). serverName, when set, is the name verified
// in the server's certificate (default: the host dialed).
func ClientConfig(caFile, serverName string) (*tls.Config, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("TLS CA " + caFile + ": no PEM certificate found")
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}, nil
}
