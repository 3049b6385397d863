package query

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	certutil "k8s.io/client-go/util/cert"
)

// serve starts a Server with a trivial handler and returns it and its stop.
func serve(t *testing.T, opts Options) (*Server, func() error) {
	t.Helper()
	opts.BindAddress = "127.0.0.1:0"
	s := &Server{Options: opts, Log: logr.Discard(), Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	select {
	case <-s.Listening():
	case err := <-done:
		cancel()
		t.Fatalf("the server did not start: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("the server did not start")
	}
	return s, func() error { cancel(); return <-done }
}

func get(t *testing.T, addr string, ca []byte, cfg *tls.Config) (string, error) {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if ca != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			t.Fatal("bad CA")
		}
		cfg.RootCAs = pool
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestServerSelfSigned(t *testing.T) {
	s, stop := serve(t, Options{})
	if body, err := get(t, s.Address(), s.CertificatePEM(), nil); err != nil || body != "ok" {
		t.Errorf("with its own certificate trusted: %q, %v", body, err)
	}
	if _, err := get(t, s.Address(), nil, nil); err == nil {
		t.Error("a client trusting only the system roots accepted the self-signed certificate")
	}
	if _, err := get(t, s.Address(), s.CertificatePEM(), &tls.Config{MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 was accepted")
	}
	if err := stop(); err != nil {
		t.Errorf("stopping: %v", err)
	}
}

func TestServerCertDir(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{{127, 0, 0, 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s, stop := serve(t, Options{CertDir: dir})
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	if s.CertificatePEM() != nil {
		t.Error("a server with a certificate directory also made a self-signed one")
	}
	if body, err := get(t, s.Address(), certPEM, nil); err != nil || body != "ok" {
		t.Errorf("with the directory's certificate trusted: %q, %v", body, err)
	}
}

func TestServerMissingCertDir(t *testing.T) {
	s := &Server{Options: Options{BindAddress: "127.0.0.1:0", CertDir: filepath.Join(t.TempDir(), "none")}, Log: logr.Discard(), Handler: http.NotFoundHandler()}
	if err := s.Start(context.Background()); err == nil {
		t.Error("a missing certificate directory gave no error")
	}
}
