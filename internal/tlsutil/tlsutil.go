// Package tlsutil loads the TLS configurations of atoll's opt-in TLS: a
// server side from a certificate and key, a client side from a CA, either
// once (ServerConfig, ClientConfig) or reloadable without a restart
// (Reloader).
package tlsutil

import (
	"crypto/tls"
)

// ServerConfig loads a certificate and its key (PEM files) into a server
// configuration (TLS 1.2 at least).
func ServerConfig(certFile, keyFile string) (*tls.Config, error) {
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}, nil
}

// ClientConfig returns a client configuration trusting only the CA
// certificates in caFile (PEM). serverName, when set, is the name verified
// in the server's certificate (default: the host dialed).
func ClientConfig(caFile, serverName string) (*tls.Config, error) {
	pool, err := loadCA(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}, nil
}
