package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/httpsrc"
	"github.com/usersuccess/persona-operator/internal/connector/inline"
	"github.com/usersuccess/persona-operator/internal/connector/postgres"
	"github.com/usersuccess/persona-operator/internal/datasource"
	"github.com/usersuccess/persona-operator/internal/identity"
)

// refReader reads the Secrets and ConfigMaps a DataSource references, from its own
// namespace only, straight from the API server (the manager does not cache
// Secret contents), acting as the DataSource's identity: the API server
// decides whether that ServiceAccount may read them, not the manager.
type refReader struct {
	reader    client.Reader
	namespace string
	id        identity.Identity
}

func (r refReader) secretKey(ctx context.Context, name, key, field string) ([]byte, error) {
	var s corev1.Secret
	if err := r.reader.Get(ctx, client.ObjectKey{Namespace: r.namespace, Name: name}, &s); err != nil {
		return nil, r.refErr(err, "Secret", name, field)
	}
	v, ok := s.Data[key]
	if !ok {
		return nil, &missingKey{conditions.Stalled{Reason: v1alpha1.ReasonSecretNotFound,
			Message: fmt.Sprintf("%s: Secret %q has no key %q", field, name, key)}}
	}
	return v, nil
}

// missingKey is a Secret without the key asked for: a Stalled error, which an
// optional key's reader forgives.
type missingKey struct{ conditions.Stalled }

func (m *missingKey) Unwrap() error { return &m.Stalled }

func isMissingKey(err error) bool {
	var m *missingKey
	return errors.As(err, &m)
}

func (r refReader) configMapKey(ctx context.Context, name, key, field string) ([]byte, error) {
	var cm corev1.ConfigMap
	if err := r.reader.Get(ctx, client.ObjectKey{Namespace: r.namespace, Name: name}, &cm); err != nil {
		return nil, r.refErr(err, "ConfigMap", name, field)
	}
	if v, ok := cm.Data[key]; ok {
		return []byte(v), nil
	}
	if v, ok := cm.BinaryData[key]; ok {
		return v, nil
	}
	return nil, conditions.Stalledf("ConfigMapNotFound", "%s: ConfigMap %q has no key %q", field, name, key)
}

func (r refReader) refErr(err error, kind, name, field string) error {
	switch {
	case apierrors.IsNotFound(err):
		return conditions.Stalledf(kind+"NotFound", "%s: %s %q not found in namespace %q", field, kind, name, r.namespace)
	case apierrors.IsForbidden(err):
		s, _ := conditions.AsStalled(identity.Denied(err, r.id, "get", strings.ToLower(kind)+"s", name))
		return &conditions.Stalled{Reason: s.Reason, Message: field + ": " + s.Message}
	default:
		return fmt.Errorf("%s: reading %s %q: %w", field, kind, name, err)
	}
}

// EventSources is the manager's event ingest (internal/ingest) as the
// DataSource controller sees it: Events DataSources register their write key
// and get the connector of their full load.
type EventSources interface {
	// Register records the source and its write key (read as the
	// DataSource's identity) and returns its full-load connector; an error is
	// a conditions.Stalled.
	Register(namespace string, ds *v1alpha1.DataSource, writeKey string) (connector.Source, error)
	// Loaded says a full load is over (applied or not).
	Loaded(namespace, name string)
	// Unregister forgets a source that was deleted or changed type.
	Unregister(namespace, name string)
}

// newEvents registers an Events DataSource with the ingest service.
func newEvents(ctx context.Context, r refReader, events EventSources, ds *v1alpha1.DataSource) (connector.Source, error) {
	if events == nil {
		return nil, conditions.Stalledf(v1alpha1.ReasonEventsDisabled,
			"type Events needs the manager's event store (--events-database-dsn-file); this manager runs without one")
	}
	if ds.Spec.Events == nil {
		return nil, conditions.Stalledf(v1alpha1.ReasonInvalidSpec, "spec.events is required for type Events")
	}
	ref := ds.Spec.Events.WriteKeySecretRef
	key, err := r.secretKey(ctx, ref.Name, ref.Key, "spec.events.writeKeySecretRef")
	if err != nil {
		return nil, err
	}
	return events.Register(ds.Namespace, ds, strings.TrimSpace(string(key)))
}

// newSource builds the connector for a DataSource, resolving its references.
// sessions keeps HTTP sources' tokens and budgets across syncs.
// resume, when not nil, is where an interrupted listing goes on (HTTP).
func newSource(ctx context.Context, r refReader, ds *v1alpha1.DataSource, mode datasource.Mode, sessions *httpsrc.Sessions,
	resume any) (connector.Source, error) {
	spec := &ds.Spec
	switch spec.Type {
	case v1alpha1.DataSourceInline:
		return newInline(ctx, r, spec.Inline)
	case v1alpha1.DataSourceHTTP:
		return newHTTP(ctx, r, ds, mode, sessions, resume)
	case v1alpha1.DataSourcePostgreSQL:
		return newPostgres(ctx, r, spec, mode)
	}
	return nil, conditions.Stalledf(v1alpha1.ReasonInvalidSpec, "spec.type %q is not supported", spec.Type)
}

func newInline(ctx context.Context, r refReader, in *v1alpha1.InlineSource) (connector.Source, error) {
	if in == nil {
		return nil, conditions.Stalledf(v1alpha1.ReasonInvalidSpec, "spec.inline is required for type Inline")
	}
	data := []byte(in.Data)
	if in.ConfigMapRef != nil {
		var err error
		if data, err = r.configMapKey(ctx, in.ConfigMapRef.Name, in.ConfigMapRef.Key, "spec.inline.configMapRef"); err != nil {
			return nil, err
		}
	}
	return inline.New(string(in.Format), data), nil
}

func newHTTP(ctx context.Context, r refReader, ds *v1alpha1.DataSource, mode datasource.Mode, sessions *httpsrc.Sessions,
	resume any) (connector.Source, error) {
	spec := &ds.Spec
	if spec.HTTP == nil {
		return nil, conditions.Stalledf(v1alpha1.ReasonInvalidSpec, "spec.http is required for type HTTP")
	}
	var since *time.Time
	if mode.Delta {
		since = &mode.Since
	}
	cfg, err := httpsrc.FromSpec(spec, since, func(name, key, field string, optional bool) ([]byte, error) {
		v, err := r.secretKey(ctx, name, key, field)
		if optional && isMissingKey(err) {
			return nil, nil
		}
		return v, err
	})
	if err != nil {
		return nil, err
	}
	observe := func(event string) { httpEvents.WithLabelValues(ds.Namespace, ds.Name, event).Inc() }
	return httpsrc.New(cfg, httpsrc.WithSession(sessions, ds.Namespace+"/"+ds.Name), httpsrc.WithObserver(observe), httpsrc.WithResume(resume))
}

func newPostgres(ctx context.Context, r refReader, spec *v1alpha1.DataSourceSpec, mode datasource.Mode) (connector.Source, error) {
	pg := spec.Postgres
	if pg == nil {
		return nil, conditions.Stalledf(v1alpha1.ReasonInvalidSpec, "spec.postgres is required for type PostgreSQL")
	}
	dsn, err := r.secretKey(ctx, pg.DSNSecretRef.Name, pg.DSNSecretRef.Key, "spec.postgres.dsnSecretRef")
	if err != nil {
		return nil, err
	}
	cfg := postgres.Config{DSN: string(dsn), Query: pg.Query}
	if mode.Delta {
		cfg.Changes = &postgres.Changes{WatermarkColumn: pg.Incremental.WatermarkColumn, Since: mode.Since}
		if spec.Entity == v1alpha1.EntitySignal {
			cfg.Changes.GroupColumn = spec.Key.UserID
		}
	}
	return postgres.New(cfg), nil
}

// indexRefs lists the Secrets and ConfigMaps a DataSource references, for the
// field indexes that map a Secret or ConfigMap change to its DataSources.
func indexRefs(ds *v1alpha1.DataSource) (secrets, configMaps []string) {
	if in := ds.Spec.Inline; in != nil && in.ConfigMapRef != nil {
		configMaps = append(configMaps, in.ConfigMapRef.Name)
	}
	if h := ds.Spec.HTTP; h != nil {
		for _, hd := range h.Headers {
			if hd.ValueFrom != nil {
				secrets = append(secrets, hd.ValueFrom.Name)
			}
		}
		if h.BearerTokenSecretRef != nil {
			secrets = append(secrets, h.BearerTokenSecretRef.Name)
		}
		if h.BasicAuthSecretRef != nil {
			secrets = append(secrets, h.BasicAuthSecretRef.Name)
		}
		if h.CASecretRef != nil {
			secrets = append(secrets, h.CASecretRef.Name)
		}
		if h.OAuth2 != nil {
			secrets = append(secrets, h.OAuth2.SecretRef.Name)
		}
	}
	if pg := ds.Spec.Postgres; pg != nil {
		secrets = append(secrets, pg.DSNSecretRef.Name)
	}
	if ev := ds.Spec.Events; ev != nil {
		secrets = append(secrets, ev.WriteKeySecretRef.Name)
	}
	return secrets, configMaps
}

// referenceStalls are the Stalled reasons a retry may clear without a spec
// change: a Secret created, a Role granted, the manager's impersonate rule
// widened. (A ConfigMap's creation arrives by its watch.) referencesVersion
// sees each of these change, so the retry syncs.
var referenceStalls = map[string]bool{
	v1alpha1.ReasonSecretNotFound:         true,
	identity.ReasonAccessDenied:           true,
	identity.ReasonImpersonationForbidden: true,
}

// referenceRetry is how soon a DataSource stalled on a reference is
// reconciled again. The manager does not watch Secrets (that takes list and
// watch on every Secret of the cluster), so the retry is how a fix is seen.
// The wait is as long as the source has been stalled (2 s, 2 s, 4 s, 8 s,
// ...), at most its interval: prompt after a quick fix, no hot loop after a
// forgotten one.
func referenceRetry(ds *v1alpha1.DataSource, now time.Time) (time.Duration, bool) {
	c := meta.FindStatusCondition(ds.Status.Conditions, v1alpha1.StalledCondition)
	if ds.Spec.Suspend || c == nil || c.Status != metav1.ConditionTrue || !referenceStalls[c.Reason] {
		return 0, false
	}
	return min(max(now.Sub(c.LastTransitionTime.Time), 2*time.Second), ds.Spec.SyncInterval()), true
}
