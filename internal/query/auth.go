package query

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Identity is an authenticated caller, as the API server's TokenReview says.
type Identity struct {
	Name   string              `json:"name"`
	UID    string              `json:"uid,omitempty"`
	Groups []string            `json:"groups,omitempty"`
	Extra  map[string][]string `json:"extra,omitempty"`
}

// Access is what a request asks for: verb get on personas/<subresource> of one
// persona in one namespace, or (an erasure, no name) create on
// datasources/erase in one namespace. The subresources are virtual (the API
// server serves no personas/explain), so RBAC can grant them on their own:
// profiles are personal data, and `get personas` alone must not reveal them,
// nor may anyone who can edit DataSources delete a user's events.
type Access struct {
	Namespace, Name, Subresource string
}

// Subresources a Role can grant.
const (
	SubresourceExplain = "explain"
	SubresourcePreview = "preview"
	// SubresourceErase is of datasources, with verb create (like
	// pods/eviction): an erasure request is created.
	SubresourceErase = "erase"
)

// Reviewer authenticates bearer tokens and authorizes identities.
type Reviewer interface {
	// Authenticate returns the token's identity; ok is false when the token is
	// not valid. err is for failures to ask (the API server is unreachable).
	Authenticate(ctx context.Context, token string) (id Identity, ok bool, err error)
	// Authorize reports whether id may have the access.
	Authorize(ctx context.Context, id Identity, a Access) (allowed bool, err error)
}

// APIReviewer asks the API server: TokenReview and SubjectAccessReview, the
// delegated authentication and authorization every aggregated API server uses.
type APIReviewer struct {
	TokenReviews         authenticationclient.TokenReviewsGetter
	SubjectAccessReviews authorizationclient.SubjectAccessReviewsGetter
}

// Authenticate implements Reviewer.
func (r APIReviewer) Authenticate(ctx context.Context, token string) (Identity, bool, error) {
	tr, err := r.TokenReviews.TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		return Identity{}, false, fmt.Errorf("TokenReview: %w", err)
	}
	if !tr.Status.Authenticated {
		return Identity{}, false, nil
	}
	u := tr.Status.User
	id := Identity{Name: u.Username, UID: u.UID, Groups: u.Groups}
	if len(u.Extra) > 0 {
		id.Extra = make(map[string][]string, len(u.Extra))
		for k, v := range u.Extra {
			id.Extra[k] = v
		}
	}
	return id, true, nil
}

// ResourceAttributes is what a SubjectAccessReview asks RBAC about for a.
//
// An explain names the persona whose rule it evaluates, so a grant limited by
// resourceNames to some personas works as it reads. A preview evaluates a rule
// of the caller's choosing over every profile of the namespace: the persona
// name only picks the live persona to compare with, so a grant limited to one
// name would restrict nothing. A preview is therefore reviewed without a name,
// and only a grant on personas/preview for every persona of the namespace
// allows it.
//
// An erasure deletes a user's events from every Events source of the
// namespace: create on datasources/erase, without a name.
func ResourceAttributes(a Access) *authorizationv1.ResourceAttributes {
	ra := &authorizationv1.ResourceAttributes{
		Namespace: a.Namespace, Verb: "get", Group: v1alpha1.GroupVersion.Group,
		Resource: "personas", Subresource: a.Subresource, Name: a.Name,
	}
	switch a.Subresource {
	case SubresourcePreview:
		ra.Name = ""
	case SubresourceErase:
		ra.Verb, ra.Resource, ra.Name = "create", "datasources", ""
	}
	return ra
}

// Authorize implements Reviewer.
func (r APIReviewer) Authorize(ctx context.Context, id Identity, a Access) (bool, error) {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: id.Name, UID: id.UID, Groups: id.Groups, ResourceAttributes: ResourceAttributes(a),
	}}
	if len(id.Extra) > 0 {
		sar.Spec.Extra = make(map[string]authorizationv1.ExtraValue, len(id.Extra))
		for k, v := range id.Extra {
			sar.Spec.Extra[k] = v
		}
	}
	out, err := r.SubjectAccessReviews.SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("SubjectAccessReview: %w", err)
	}
	return out.Status.Allowed && !out.Status.Denied, nil
}

// CacheTTLs bound how long a review's answer is reused. Short, because the
// data is personal: a revoked RoleBinding takes effect within AllowTTL.
type CacheTTLs struct {
	Authenticated, Unauthenticated, Allow, Deny time.Duration
}

// DefaultCacheTTLs are the caches' lifetimes.
var DefaultCacheTTLs = CacheTTLs{Authenticated: time.Minute, Unauthenticated: 10 * time.Second, Allow: time.Minute, Deny: 10 * time.Second}

// ReviewRate bounds the TokenReviews of tokens the cache does not know: any
// caller that reaches the endpoint, authenticated or not, can send a new
// token with every request, and each would otherwise cost the API server a
// TokenReview.
type ReviewRate struct {
	PerSecond float64
	Burst     int
}

// DefaultReviewRate allows far more new tokens than people running kubectl
// persona have (a token is reviewed once per Authenticated TTL), and keeps a
// flood of made-up tokens to a trickle of TokenReviews.
var DefaultReviewRate = ReviewRate{PerSecond: 5, Burst: 20}

// ErrThrottled is returned instead of asking the API server about a token
// when too many unknown tokens came in: the request may be retried shortly.
var ErrThrottled = errors.New("too many requests with unknown tokens")

// CachingReviewer remembers answers for a while, so a burst of requests from
// one kubectl costs the API server one TokenReview and one SubjectAccessReview.
// Tokens are keyed by their SHA-256, never kept. Valid and invalid tokens are
// both remembered (invalid ones for less long), in bounded caches; tokens
// neither cache knows are reviewed at most at Rate.
type CachingReviewer struct {
	Inner Reviewer
	TTLs  CacheTTLs
	Clock func() time.Time
	// Rate bounds TokenReviews of unknown tokens (zero: DefaultReviewRate).
	Rate ReviewRate

	authn   ttlCache[authnAnswer]
	authz   ttlCache[bool]
	once    sync.Once
	limiter *rate.Limiter
}

// allowReview reports whether an unknown token may be reviewed now.
func (c *CachingReviewer) allowReview() bool {
	c.once.Do(func() {
		r := c.Rate
		if r == (ReviewRate{}) {
			r = DefaultReviewRate
		}
		c.limiter = rate.NewLimiter(rate.Limit(r.PerSecond), max(r.Burst, 1))
	})
	return c.limiter.AllowN(c.now(), 1)
}

type authnAnswer struct {
	id Identity
	ok bool
}

// Authenticate implements Reviewer.
func (c *CachingReviewer) Authenticate(ctx context.Context, token string) (Identity, bool, error) {
	key := digest(token)
	if a, hit := c.authn.get(key, c.now()); hit {
		return a.id, a.ok, nil
	}
	if !c.allowReview() {
		return Identity{}, false, ErrThrottled
	}
	id, ok, err := c.Inner.Authenticate(ctx, token)
	if err != nil {
		return Identity{}, false, err // failures to ask are not remembered
	}
	ttl := c.TTLs.Unauthenticated
	if ok {
		ttl = c.TTLs.Authenticated
	}
	c.authn.put(key, authnAnswer{id: id, ok: ok}, c.now(), ttl)
	return id, ok, nil
}

// Authorize implements Reviewer.
func (c *CachingReviewer) Authorize(ctx context.Context, id Identity, a Access) (bool, error) {
	b, err := json.Marshal(struct {
		ID     Identity
		Access Access
	}{id, a})
	if err != nil {
		return false, err
	}
	key := digest(string(b))
	if allowed, hit := c.authz.get(key, c.now()); hit {
		return allowed, nil
	}
	allowed, err := c.Inner.Authorize(ctx, id, a)
	if err != nil {
		return false, err
	}
	ttl := c.TTLs.Deny
	if allowed {
		ttl = c.TTLs.Allow
	}
	c.authz.put(key, allowed, c.now(), ttl)
	return allowed, nil
}

func (c *CachingReviewer) now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// maxCacheEntries bounds each cache: a flood of distinct tokens must not grow
// the manager's memory.
const maxCacheEntries = 4096

// ttlCache is a small map with expiry.
type ttlCache[V any] struct {
	mu      sync.Mutex
	entries map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func (c *ttlCache[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) put(key string, v V, now time.Time, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]ttlEntry[V]{}
	}
	if len(c.entries) >= maxCacheEntries {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCacheEntries {
			c.entries = map[string]ttlEntry[V]{} // all live: start over rather than grow
		}
	}
	c.entries[key] = ttlEntry[V]{v: v, expires: now.Add(ttl)}
}
