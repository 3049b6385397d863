package main

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	personasv1alpha1 "github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/eventstore"
	"github.com/usersuccess/persona-operator/internal/ingest"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// setupEvents opens the event store and adds the event endpoint, when
// --events-database-dsn-file is set (nil otherwise). The endpoint is a
// listener of its own, like the query endpoint: its clients are SDKs with a
// write key, not Kubernetes identities, and it must be exposable (an Ingress)
// without exposing the webhook, metrics or query endpoints.
func setupEvents(mgr ctrl.Manager, store *profile.Store, storeEvents chan<- event.GenericEvent,
	dsnFile, bind, certDir string, tlsOpts []func(*tls.Config)) (*ingest.Service, error) {
	if dsnFile == "" {
		return nil, nil
	}
	if bind == "0" || bind == "" {
		return nil, errors.New("--events-database-dsn-file needs --events-bind-address")
	}
	dsn, err := os.ReadFile(dsnFile)
	if err != nil {
		return nil, errors.New("reading --events-database-dsn-file failed")
	}
	events, err := eventstore.Open(context.Background(), strings.TrimSpace(string(dsn)))
	if err != nil {
		return nil, err
	}
	svc := ingest.New(events, store, func(namespace, name string) {
		storeEvents <- event.GenericEvent{Object: &personasv1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}}
	})
	srv := ingest.NewServer(svc, bind)
	if certDir != "" {
		w, err := certwatcher.New(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
		if err != nil {
			return nil, err
		}
		if err := mgr.Add(manager.RunnableFunc(w.Start)); err != nil {
			return nil, err
		}
		cfg := &tls.Config{GetCertificate: w.GetCertificate, MinVersion: tls.VersionTLS12}
		for _, o := range tlsOpts {
			o(cfg)
		}
		srv.TLS = cfg
	}
	return svc, mgr.Add(srv)
}
