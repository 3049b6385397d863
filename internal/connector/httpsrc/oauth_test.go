package httpsrc

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"
)

// A token about to expire (within earlyExpiry) is replaced before it is
// sent; one with time left is reused, across syncs of the same session.
func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	for _, tc := range []struct {
		expiresIn  int
		wantTokens int32
	}{{30, 4}, {3600, 1}} {
		var tokens atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				n := tokens.Add(1)
				w.Header().Set("Content-Type", "application/json")
				_, _ = fmt.Fprintf(w, `{"access_token":"t%d","token_type":"Bearer","expires_in":%d}`, n, tc.expiresIn)
				return
			}
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer t") {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if r.URL.Query().Get("p") == "" {
				_, _ = write(w, `{"data":[{"id":"a"}],"next":"?p=2"}`)
				return
			}
			_, _ = write(w, `{"data":[{"id":"b"}]}`)
		}))
		cfg := Config{URL: srv.URL + "/users", RecordsPath: "data", Pagination: Pagination{Type: PaginationNextLink, NextLinkPath: "next"},
			OAuth2: &OAuth2{Flow: FlowClientCredentials, TokenURL: srv.URL + "/token", ClientID: "id", ClientSecret: "sec"}}
		sessions := NewSessions()
		for range 2 {
			if _, err := fetch(t, cfg, WithSession(sessions, "ds")); err != nil {
				t.Fatal(err)
			}
		}
		srv.Close()
		if got := tokens.Load(); got != tc.wantTokens {
			t.Errorf("expires_in %d: %d token requests for 4 pages in 2 syncs, want %d", tc.expiresIn, got, tc.wantTokens)
		}
	}
}

// The vendor's error code and description, never a credential.
func TestVendorError(t *testing.T) {
	resp := &http.Response{StatusCode: 400}
	cases := []struct {
		re   *oauth2.RetrieveError
		want string
	}{
		{&oauth2.RetrieveError{Response: resp, ErrorCode: "invalid_grant", ErrorDescription: "expired access/refresh token"}, "invalid_grant (expired access/refresh token)"},
		{&oauth2.RetrieveError{Response: resp, Body: []byte(`{"status":"BAD_REFRESH_TOKEN","message":"missing or unknown refresh token"}`)}, "BAD_REFRESH_TOKEN (missing or unknown refresh token)"},
		{&oauth2.RetrieveError{Response: resp, ErrorCode: "invalid_grant", ErrorDescription: "token rt-SECRET-123456 revoked"}, "invalid_grant"},
		{&oauth2.RetrieveError{Response: resp, ErrorCode: "bad\ncode<script>"}, "badcodescript"},
		{&oauth2.RetrieveError{Response: resp, Body: []byte(`not json`)}, "no error code"},
	}
	for _, tc := range cases {
		if got := vendorError(tc.re, []string{"rt-SECRET-123456"}); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

func TestOAuth2Config(t *testing.T) {
	for name, o := range map[string]OAuth2{
		"no secret":       {Flow: FlowClientCredentials, TokenURL: "https://a.example.com/t", ClientID: "id"},
		"no refresh":      {Flow: FlowRefreshToken, TokenURL: "https://a.example.com/t", ClientID: "id"},
		"bad key":         {Flow: FlowJWTBearer, TokenURL: "https://a.example.com/t", ClientID: "id", PrivateKey: []byte("-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----\n")},
		"token URL creds": {Flow: FlowClientCredentials, TokenURL: "https://u:p@a.example.com/t", ClientID: "id", ClientSecret: "s"},
		"unknown flow":    {Flow: "Password", TokenURL: "https://a.example.com/t"},
	} {
		_, err := New(Config{URL: "https://example.com/", OAuth2: &o})
		wantConfig(t, err, "InvalidAuth")
		if strings.Contains(err.Error(), "nope") || strings.Contains(err.Error(), "u:p") {
			t.Errorf("%s: the message quotes a credential: %v", name, err)
		}
	}
	_, err := New(Config{URL: "https://example.com/", BearerToken: "x", OAuth2: &OAuth2{Flow: FlowClientCredentials, TokenURL: "https://a.example.com/t", ClientID: "i", ClientSecret: "s"}})
	wantConfig(t, err, "InvalidAuth")
}
