// Package operatortest runs the whole operator in a test manager on a
// cluster.Cluster, wired as cmd/main.go wires it: the DataSource, Persona and
// Playbook controllers sharing one profile store, the Persona admission
// webhook (when the cluster serves webhooks) and, when asked, the query
// endpoint on loopback. Suites outside the controller package use it (the
// controller package's suite wires its reconcilers itself: it cannot import a
// package that imports it).
package operatortest

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/controller"
	"github.com/usersuccess/persona-operator/internal/eventstore"
	"github.com/usersuccess/persona-operator/internal/ingest"
	"github.com/usersuccess/persona-operator/internal/profile"
	"github.com/usersuccess/persona-operator/internal/query"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
	"github.com/usersuccess/persona-operator/internal/webhook"
)

// Options choose the operator's clocks and parts.
type Options struct {
	// PersonaClock and PlaybookClock drive those controllers (nil: the real
	// clock), so specs can move time.
	PersonaClock, PlaybookClock clock.PassiveClock
	// Query serves the query endpoint on 127.0.0.1 with a self-signed
	// certificate.
	Query bool
	// EventsDSN, when set, opens the event store there and serves the event
	// endpoint on 127.0.0.1 (plain HTTP), as --events-database-dsn-file does.
	EventsDSN string
}

// Operator is a running operator.
type Operator struct {
	// Store is the controllers' profile store.
	Store *profile.Store
	// Query is the query endpoint (nil unless Options.Query).
	Query *query.Server
	// Events is the event endpoint (nil unless Options.EventsDSN).
	Events *ingest.Server
	stop   func() error
}

// Setup registers the operator's controllers, webhook and endpoint with mgr
// on a fresh profile store.
func Setup(mgr manager.Manager, c *cluster.Cluster, opts Options) (*Operator, error) {
	o := &Operator{Store: profile.NewStore()}
	events := make(chan event.GenericEvent, 1024)
	var sources controller.EventSources
	var eraser query.Eraser
	if opts.EventsDSN != "" {
		store, err := eventstore.Open(context.Background(), opts.EventsDSN)
		if err != nil {
			return nil, err
		}
		svc := ingest.New(store, o.Store, func(namespace, name string) {
			events <- event.GenericEvent{Object: &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}}
		})
		o.Events = ingest.NewServer(svc, "127.0.0.1:0")
		if err := mgr.Add(o.Events); err != nil {
			return nil, err
		}
		sources, eraser = svc, svc
	}
	if err := (&controller.DataSourceReconciler{StoreEvents: events, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Store: o.Store, Recorder: mgr.GetEventRecorder("datasource-controller"), Events: sources}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&controller.PersonaReconciler{APIReader: mgr.GetAPIReader(), StoreEvents: events, Client: mgr.GetClient(),
		Store: o.Store, Clock: opts.PersonaClock, Recorder: mgr.GetEventRecorder("persona-controller")}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&controller.PlaybookReconciler{Client: mgr.GetClient(), Store: o.Store, Clock: opts.PlaybookClock,
		Recorder: mgr.GetEventRecorder("playbook-controller")}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if c.Webhooks() {
		if err := webhook.SetupPersonaWebhook(mgr); err != nil {
			return nil, err
		}
	}
	if opts.Query {
		var err error
		if o.Query, err = query.Setup(mgr, o.Store, query.Options{BindAddress: "127.0.0.1:0", Eraser: eraser}); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Start makes a manager on the cluster, sets the operator up on it and runs
// it until Stop (or ctx ends); with the query endpoint, it returns once the
// endpoint listens.
func Start(ctx context.Context, c *cluster.Cluster, opts Options) (*Operator, error) {
	mgr, err := c.NewManager()
	if err != nil {
		return nil, err
	}
	o, err := Setup(mgr, c, opts)
	if err != nil {
		return nil, err
	}
	o.stop = cluster.Run(ctx, mgr)
	if o.Events != nil {
		select {
		case <-o.Events.Listening():
		case <-time.After(time.Minute):
			return nil, errors.Join(fmt.Errorf("the event endpoint did not start"), o.stop())
		}
	}
	if o.Query == nil {
		return o, nil
	}
	select {
	case <-o.Query.Listening():
		return o, nil
	case <-time.After(time.Minute):
		return nil, errors.Join(fmt.Errorf("the query endpoint did not start"), o.stop())
	}
}

// Stop stops the operator's manager and waits for it.
func (o *Operator) Stop() error { return o.stop() }
