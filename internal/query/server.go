package query

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/usersuccess/persona-operator/internal/profile"
)

// Options configure the endpoint.
type Options struct {
	// BindAddress is host:port to listen on, e.g. ":8444".
	BindAddress string
	// CertDir holds tls.crt and tls.key (reloaded when they change, as
	// cert-manager rotates them). Empty: a self-signed certificate made in
	// memory at start, as controller-runtime's metrics server does.
	CertDir string
	// TLSOpts adjust the TLS configuration (e.g. HTTP/2 off).
	TLSOpts []func(*tls.Config)
	// MaxConcurrent evaluations; 0: 2.
	MaxConcurrent int
	// CacheTTLs of the authentication and authorization answers; zero:
	// DefaultCacheTTLs.
	CacheTTLs CacheTTLs
	// Eraser serves erasures (the event endpoint's service); nil: none.
	Eraser Eraser
}

// Setup adds the endpoint to the manager: a Runnable that serves on every
// replica (answering 503 on a replica that is not the leader, whose store is
// empty) with TokenReview and SubjectAccessReview through the manager's
// config.
func Setup(mgr manager.Manager, store *profile.Store, opts Options) (*Server, error) {
	authn, err := authenticationclient.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, err
	}
	authz, err := authorizationclient.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, err
	}
	ttls := opts.CacheTTLs
	if ttls == (CacheTTLs{}) {
		ttls = DefaultCacheTTLs
	}
	elected := mgr.Elected()
	logger := mgr.GetLogger().WithName("query")
	h := NewHandler(Handler{
		Reviewer: &CachingReviewer{Inner: APIReviewer{TokenReviews: authn, SubjectAccessReviews: authz}, TTLs: ttls},
		Store:    store,
		Reader:   mgr.GetClient(),
		Log:      logger,
		Eraser:   opts.Eraser,
		Ready: func() bool {
			select {
			case <-elected:
				return true
			default:
				return false
			}
		},
	}, maxConcurrent(opts.MaxConcurrent))
	s := &Server{Options: opts, Handler: h, Log: logger}
	return s, mgr.Add(s)
}

func maxConcurrent(n int) int {
	if n <= 0 {
		return 2
	}
	return n
}

// Server serves a handler over HTTPS until its context ends.
type Server struct {
	Options
	Handler http.Handler
	Log     logr.Logger

	mu       sync.Mutex
	addr     string
	certPEM  []byte
	started  chan struct{}
	initOnce sync.Once
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica
// serves, so that a standby answers "not the leader" instead of refusing
// connections.
func (s *Server) NeedLeaderElection() bool { return false }

// Listening is closed once the server accepts connections.
func (s *Server) Listening() <-chan struct{} { return s.startedCh() }

func (s *Server) startedCh() chan struct{} {
	s.initOnce.Do(func() { s.started = make(chan struct{}) })
	return s.started
}

// Address is the address the server listens on, once Listening.
func (s *Server) Address() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// CertificatePEM is the self-signed certificate chain made at start (nil with
// CertDir): clients may trust it with --endpoint-certificate-authority.
func (s *Server) CertificatePEM() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.certPEM
}

// Start implements manager.Runnable.
func (s *Server) Start(ctx context.Context) error {
	cfg, err := s.tlsConfig(ctx)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.BindAddress)
	if err != nil {
		return fmt.Errorf("query endpoint: listening on %s: %w", s.BindAddress, err)
	}
	srv := &http.Server{
		Handler:           s.Handler,
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Long enough for a preview over a large namespace.
		WriteTimeout: 5 * time.Minute,
		IdleTimeout:  2 * time.Minute,
		// TLS handshake failures (scanners, clients that do not trust the
		// certificate) are noise at the default level.
		ErrorLog: log.New(logWriter{s.Log.V(1)}, "", 0),
	}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	close(s.startedCh())
	s.Log.Info("serving the query endpoint", "address", s.addr, "selfSigned", s.CertDir == "")
	done := make(chan error, 1)
	go func() { done <- srv.Serve(tls.NewListener(ln, cfg)) }()
	select {
	case err := <-done:
		return fmt.Errorf("query endpoint: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) tlsConfig(ctx context.Context) (*tls.Config, error) {
	// HTTP/1.1 only: the endpoint needs nothing of HTTP/2 (and avoids CVE-2023-44487).
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if s.CertDir != "" {
		w, err := certwatcher.New(filepath.Join(s.CertDir, "tls.crt"), filepath.Join(s.CertDir, "tls.key"))
		if err != nil {
			return nil, fmt.Errorf("query endpoint: loading the certificate from %s: %w", s.CertDir, err)
		}
		go func() {
			if err := w.Start(ctx); err != nil {
				s.Log.Error(err, "watching the query endpoint's certificate")
			}
		}()
		cfg.GetCertificate = w.GetCertificate
	} else {
		certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("localhost", []net.IP{{127, 0, 0, 1}, net.IPv6loopback}, nil)
		if err != nil {
			return nil, fmt.Errorf("query endpoint: generating a self-signed certificate: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
		s.mu.Lock()
		s.certPEM = certPEM
		s.mu.Unlock()
	}
	for _, o := range s.TLSOpts {
		o(cfg)
	}
	return cfg, nil
}

// logWriter feeds the standard library's logger of http.Server into logr.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}
