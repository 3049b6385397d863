// Command localclusterhelper does the two things hack/localcluster.sh cannot do
// portably in bash: make the cluster's PKI and pick free loopback ports. It uses
// only the standard library, so it works on a fresh machine with nothing but Go
// (no openssl, no python).
//
// Usage:
//
//	localclusterhelper pki DIR     write, if missing, into DIR:
//	                                 ca.crt ca.key             cluster CA
//	                                 apiserver.crt apiserver.key  serving cert for 127.0.0.1
//	                                 sa.key sa.pub             service-account signing key pair
//	                                 query/tls.crt query/tls.key  serving cert for the
//	                                                           operator's query endpoint on 127.0.0.1
//	localclusterhelper ports N     print N distinct free TCP ports on 127.0.0.1, one a line
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "localclusterhelper:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: localclusterhelper pki DIR | ports N")
	}
	switch args[0] {
	case "pki":
		return writePKI(args[1])
	case "ports":
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 1 {
			return fmt.Errorf("ports: want a positive count, got %q", args[1])
		}
		ports, err := freePorts(n)
		if err != nil {
			return err
		}
		for _, p := range ports {
			fmt.Println(p)
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// freePorts holds all N listeners open until every port is chosen, so the N
// ports are distinct; the caller binds them moments later (a small race that a
// collision check in the caller turns into a clear error).
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer func() { _ = l.Close() }()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writePKI keeps an existing PKI: the kubeconfigs that users exported stay valid
// across down/up, and a restart costs no key generation.
func writePKI(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caCrt, caKeyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if !exists(caCrt) || !exists(caKeyPath) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			Subject:               pkix.Name{CommonName: "persona-localcluster-ca"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().AddDate(10, 0, 0),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		if err := writeCert(caCrt, caKeyPath, tmpl, tmpl, key, key); err != nil {
			return err
		}
		// A new CA invalidates any serving cert signed by the old one.
		_ = os.Remove(filepath.Join(dir, "apiserver.crt"))
		_ = os.Remove(filepath.Join(dir, "query", "tls.crt"))
	}
	ca, caKey, err := loadCA(caCrt, caKeyPath)
	if err != nil {
		return err
	}

	// 10.96.0.1 is the `kubernetes` Service IP in --service-cluster-ip-range.
	if err := servingCert(filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key"), "kube-apiserver",
		[]string{"127.0.0.1", "::1", "10.96.0.1"},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		ca, caKey); err != nil {
		return err
	}
	// The operator's query endpoint (kubectl persona explain/preview) when the
	// manager runs as a local process, as in `make demo`: its own key, signed
	// by the cluster CA, so the plugin verifies it with ca.crt instead of
	// sending a token to whatever answers.
	if err := servingCert(filepath.Join(dir, "query", "tls.crt"), filepath.Join(dir, "query", "tls.key"), "persona-operator-query",
		[]string{"127.0.0.1", "::1"}, []string{"localhost"}, ca, caKey); err != nil {
		return err
	}

	saKey, saPub := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if !exists(saKey) || !exists(saPub) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		if err := writeKey(saKey, key); err != nil {
			return err
		}
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return err
		}
		if err := writePEM(saPub, "PUBLIC KEY", der, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func writeCert(crtPath, keyPath string, tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) error {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return err
	}
	if err := writeKey(keyPath, key); err != nil {
		return err
	}
	return writePEM(crtPath, "CERTIFICATE", der, 0o644)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

// writePEM writes via a temp file and rename, so an interrupted run never leaves
// a truncated file that the exists() checks above would trust.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// servingCert writes, if missing, a serving certificate for the IPs and DNS
// names, signed by the CA, with its own key (its directory made if needed).
func servingCert(crtPath, keyPath, cn string, ips, dns []string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
	if exists(crtPath) && exists(keyPath) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(crtPath), 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().AddDate(10, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dns,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	return writeCert(crtPath, keyPath, tmpl, ca, key, caKey)
}

func loadCA(crtPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	crtPEM, err := os.ReadFile(crtPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(crtPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("%s or %s is not PEM", crtPath, keyPath)
	}
	crt, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return crt, key, nil
}
