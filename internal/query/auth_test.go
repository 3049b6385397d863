package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// TestUnknownTokensAreRateLimited: a flood of made-up tokens costs the API
// server at most the burst of TokenReviews, then Rate per second; known
// tokens, valid or not, are answered from the cache meanwhile.
func TestUnknownTokensAreRateLimited(t *testing.T) {
	inner := &countingReviewer{}
	clock := now
	c := &CachingReviewer{Inner: inner, TTLs: DefaultCacheTTLs, Clock: func() time.Time { return clock },
		Rate: ReviewRate{PerSecond: 2, Burst: 3}}
	ctx := context.Background()
	if _, ok, err := c.Authenticate(ctx, goodToken); !ok || err != nil {
		t.Fatalf("a good token: %v %v", ok, err)
	}
	if _, ok, err := c.Authenticate(ctx, badToken); ok || err != nil {
		t.Fatalf("a bad token: %v %v", ok, err)
	}
	throttled := 0
	for i := range 100 {
		_, ok, err := c.Authenticate(ctx, fmt.Sprintf("made-up-%d", i))
		switch {
		case errors.Is(err, ErrThrottled):
			throttled++
		case err != nil || ok:
			t.Fatalf("made-up token %d: %v %v", i, ok, err)
		}
	}
	if inner.authn != 3 || throttled != 99 {
		t.Fatalf("%d TokenReviews, %d throttled; want the burst of 3 (2 known tokens and 1 made-up), 99 throttled", inner.authn, throttled)
	}
	// Known answers need no review.
	if _, ok, err := c.Authenticate(ctx, goodToken); !ok || err != nil {
		t.Errorf("a cached good token while throttled: %v %v", ok, err)
	}
	if _, ok, err := c.Authenticate(ctx, badToken); ok || err != nil {
		t.Errorf("a cached bad token while throttled: %v %v", ok, err)
	}
	// The bucket refills at Rate.
	clock = clock.Add(time.Second)
	for i := range 3 {
		_, _, err := c.Authenticate(ctx, fmt.Sprintf("later-%d", i))
		if (err == nil) != (i < 2) {
			t.Errorf("one second later, new token %d: %v", i, err)
		}
	}
	if inner.authn != 5 {
		t.Errorf("%d TokenReviews, want 5", inner.authn)
	}
}

type throttledReviewer struct{ countingReviewer }

func (throttledReviewer) Authenticate(context.Context, string) (Identity, bool, error) {
	return Identity{}, false, ErrThrottled
}

func TestThrottledIs429(t *testing.T) {
	h := NewHandler(Handler{Reviewer: &throttledReviewer{}, Log: logr.Discard()}, 1)
	r := httptest.NewRequest(http.MethodGet, explainPath+"?user=u1", nil)
	r.Header.Set("Authorization", "Bearer "+goodToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Errorf("code %d, Retry-After %q: want 429 and 1", w.Code, w.Header().Get("Retry-After"))
	}
}

func TestResourceAttributes(t *testing.T) {
	explain := ResourceAttributes(Access{Namespace: "team", Name: "detractors", Subresource: SubresourceExplain})
	if explain.Name != "detractors" || explain.Subresource != "explain" || explain.Namespace != "team" || explain.Verb != "get" {
		t.Errorf("explain: %+v, want get personas/explain named detractors", explain)
	}
	preview := ResourceAttributes(Access{Namespace: "team", Name: "detractors", Subresource: SubresourcePreview})
	if preview.Name != "" || preview.Subresource != "preview" || preview.Namespace != "team" {
		t.Errorf("preview: %+v, want get personas/preview without a name", preview)
	}
}
