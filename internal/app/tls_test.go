package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
)

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, as PEM files in dir.
type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		require.NoError(t, err)
		keyDER, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func startTLSApp(t *testing.T, p pki, clientCA string) (*App, nats.Option) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen, cfg.DataDir = "127.0.0.1:-1", t.TempDir()
	cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA = p.serverCert, p.serverKey, clientCA
	var logs syncBuffer
	a, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	return a, nats.UserCredentials(a.AdminCredsPath())
}

// TestApp_TLS: with a certificate the embedded server takes TLS clients
// only, and the bus serves them (its own connections are in-process).
func TestApp_TLS(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	a, admin := startTLSApp(t, p, "")
	require.True(t, strings.HasPrefix(a.ClientURL(), "tls://"), a.ClientURL())

	nc, err := nats.Connect(a.ClientURL(), append([]nats.Option{admin}, nats.RootCAs(p.ca), nats.Timeout(natstest.Patience))...)
	require.NoError(t, err, "a TLS client that trusts the CA connects")
	defer nc.Close()
	c, err := client.New(nc, client.WithServiceID(auth.AdminServiceID))
	require.NoError(t, err)
	s, err := c.CreateSession(context.Background(), "u", "token-over-tls")
	require.NoError(t, err)
	assert.Equal(t, "u", s.LoginID)

	plain := strings.Replace(a.ClientURL(), "tls://", "nats://", 1)
	_, err = nats.Connect(plain, append([]nats.Option{admin}, nats.NoReconnect(), nats.Timeout(natstest.Patience))...)
	require.Error(t, err, "a client without TLS is refused")
	_, err = nats.Connect(a.ClientURL(), append([]nats.Option{admin}, nats.NoReconnect(), nats.Timeout(natstest.Patience))...)
	require.Error(t, err, "a client that does not trust the server's CA is refused")
}

// TestApp_TLSClientCA: with a client CA, a client must present a
// certificate signed by it.
func TestApp_TLSClientCA(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	a, admin := startTLSApp(t, p, p.ca)
	_, err := nats.Connect(a.ClientURL(), append([]nats.Option{admin}, nats.RootCAs(p.ca), nats.NoReconnect(), nats.Timeout(natstest.Patience))...)
	require.Error(t, err, "no client certificate: refused")
	nc, err := nats.Connect(a.ClientURL(), append([]nats.Option{admin}, nats.RootCAs(p.ca),
		nats.ClientCert(p.clientCert, p.clientKey), nats.Timeout(natstest.Patience))...)
	require.NoError(t, err)
	nc.Close()
}

func TestConfig_TLSValidation(t *testing.T) {
	for _, tt := range []struct {
		name string
		give func(*Config)
	}{
		{"cert without key", func(c *Config) { c.TLSCert = "c.pem" }},
		{"key without cert", func(c *Config) { c.TLSKey = "k.pem" }},
		{"client CA alone", func(c *Config) { c.TLSClientCA = "ca.pem" }},
		{"external NATS", func(c *Config) { c.TLSCert, c.TLSKey, c.NATSURL = "c.pem", "k.pem", "nats://x:4222" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.give(&cfg)
			require.ErrorIs(t, cfg.validate(), ErrInvalidConfig)
		})
	}
}
