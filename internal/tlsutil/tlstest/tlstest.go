// Package tlstest writes a throwaway CA and a server certificate signed by
// it (ECDSA P-256, valid for 127.0.0.1, ::1 and localhost) for tests.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Files are the paths of the generated PEM files. CAKey is the CA's key
// (for Reissue).
type Files struct {
	CA, Cert, Key, CAKey string
}

// Generate writes ca.pem, ca-key.pem, cert.pem (serial 2) and key.pem into
// a temp dir of t.
func Generate(t testing.TB) Files {
	t.Helper()
	f, err := Write(t.TempDir())
	if err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	return f
}

// Write writes ca.pem, ca-key.pem, cert.pem (serial 2) and key.pem into dir.
func Write(dir string) (Files, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Files{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "atoll test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return Files{}, err
	}
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return Files{}, err
	}
	f := Files{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), CAKey: filepath.Join(dir, "ca-key.pem")}
	if err := writePEM(f.CA, "CERTIFICATE", caDER); err != nil {
		return Files{}, err
	}
	if err := writePEM(f.CAKey, "EC PRIVATE KEY", caKeyDER); err != nil {
		return Files{}, err
	}
	return f, f.Issue(f.Cert, f.Key, 2)
}

// Reissue overwrites f.Cert and f.Key with a new certificate (new key) of
// the same CA, with the given serial number.
func Reissue(t testing.TB, f Files, serial int64) {
	t.Helper()
	if err := f.Issue(f.Cert, f.Key, serial); err != nil {
		t.Fatalf("tlstest: %v", err)
	}
}

// Issue writes a certificate signed by the CA of f (valid for 127.0.0.1,
// ::1 and localhost, server and client auth) and its new key to certFile
// and keyFile.
func (f Files) Issue(certFile, keyFile string, serial int64) error {
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return err
	}
	caKeyPEM, err := os.ReadFile(f.CAKey)
	if err != nil {
		return err
	}
	cb, kb := pemBytes(caPEM), pemBytes(caKeyPEM)
	if cb == nil || kb == nil {
		return errors.New("tlstest: bad CA files")
	}
	ca, err := x509.ParseCertificate(cb)
	if err != nil {
		return err
	}
	caKey, err := x509.ParseECPrivateKey(kb)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		return err
	}
	return writePEM(keyFile, "EC PRIVATE KEY", keyDER)
}

func pemBytes(b []byte) []byte {
	if p, _ := pem.Decode(b); p != nil {
		return p.Bytes
	}
	return nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
