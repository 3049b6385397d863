package controller

import (
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/internal/identity"
)

// maxIdentityClients bounds the client cache: one entry per namespace and
// ServiceAccount acted as; past it the cache starts over (a client is cheap to
// make again: the TLS transport underneath is shared).
const maxIdentityClients = 4096

// Identities hands out the clients the reconcilers act through for an object:
// uncached, and impersonating the object's ServiceAccount (Flux's model), so
// the API server authorizes every Secret or ConfigMap read and every Job
// create against the tenant's RBAC. Which identity an object gets is
// identity.Policy's decision; this only makes and caches the clients.
type Identities struct {
	Policy identity.Policy

	config *rest.Config
	scheme *runtime.Scheme
	mapper meta.RESTMapper

	mu      sync.Mutex
	clients map[identity.Identity]client.Client
}

// NewIdentities makes the client factory for a manager. Its clients share one
// rate limiter of the manager's QPS and burst, so acting as many
// ServiceAccounts does not multiply the load --kube-api-qps allows.
func NewIdentities(mgr ctrl.Manager, policy identity.Policy) *Identities {
	cfg := rest.CopyConfig(mgr.GetConfig())
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	}
	return &Identities{Policy: policy, config: cfg, scheme: mgr.GetScheme(), mapper: mgr.GetRESTMapper()}
}

// Resolve decides the identity for an object of namespace naming the
// ServiceAccount named (empty: none), and returns the client acting as it. The
// error is a Stalled one when the policy refuses (--require-service-account).
// A nil factory (a reconciler built by hand in a test) has the zero policy and
// returns a nil client for the manager: the caller uses its own.
func (f *Identities) Resolve(namespace, named string) (identity.Identity, client.Client, error) {
	if f == nil {
		id, _ := identity.Policy{}.Resolve(namespace, named)
		if !id.Manager() {
			return id, nil, fmt.Errorf("acting as %s needs the reconciler's Identities", id)
		}
		return id, nil, nil
	}
	id, err := f.Policy.Resolve(namespace, named)
	if err != nil {
		return id, nil, err
	}
	c, err := f.client(id)
	return id, c, err
}

func (f *Identities) client(id identity.Identity) (client.Client, error) {
	key := identity.Identity{ServiceAccount: id.ServiceAccount}
	if !id.Manager() {
		key.Namespace = id.Namespace // the manager's client serves every namespace
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[key]; ok {
		return c, nil
	}
	cfg := rest.CopyConfig(f.config)
	if !id.Manager() {
		// Only the user name: the API server adds the ServiceAccount's groups
		// (system:serviceaccounts, system:serviceaccounts:<namespace>).
		cfg.Impersonate = rest.ImpersonationConfig{UserName: id.Username()}
	}
	c, err := client.New(cfg, client.Options{Scheme: f.scheme, Mapper: f.mapper})
	if err != nil {
		return nil, fmt.Errorf("building the client acting as %s: %w", id, err)
	}
	if f.clients == nil || len(f.clients) >= maxIdentityClients {
		f.clients = map[identity.Identity]client.Client{}
	}
	f.clients[key] = c
	return c, nil
}
