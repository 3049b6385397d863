package httpsrc

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"

	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/netguard"
)

// OAuth2 flows.
const (
	FlowClientCredentials = "ClientCredentials"
	FlowRefreshToken      = "RefreshToken"
	FlowJWTBearer         = "JWTBearer"
)

// The token is fetched again this long before it expires, so that no page
// is sent with a token about to lapse.
const earlyExpiry = time.Minute

// jwtLifetime is the JWT assertion's validity: Salesforce refuses one valid
// for more than 3 minutes.
const jwtLifetime = 2 * time.Minute

// OAuth2 is how an access token is obtained. The flows, the token request
// and its response are golang.org/x/oauth2's; this package keeps the token
// per source and maps its errors.
type OAuth2 struct {
	Flow     string
	TokenURL string
	// ClientID and ClientSecret: ClientCredentials and RefreshToken; ClientID
	// is the JWT's issuer in JWTBearer (Salesforce: the consumer key).
	ClientID, ClientSecret string
	RefreshToken           string
	// PrivateKey signs the JWTBearer assertion (PEM, RSA).
	PrivateKey []byte
	Scopes     []string
	// Subject and Audience are the JWT's sub and aud (JWTBearer).
	Subject, Audience string
}

// secrets are the credential values, which no message may contain.
func (o *OAuth2) secrets() []string {
	return []string{o.ClientSecret, o.RefreshToken, string(o.PrivateKey)}
}

// key identifies the credentials: a cached token is used only for the same.
func (o *OAuth2) key() string {
	if o == nil {
		return ""
	}
	h := sha256.New()
	for _, s := range append([]string{o.Flow, o.TokenURL, o.ClientID, o.Subject, o.Audience, strings.Join(o.Scopes, " ")}, o.secrets()...) {
		_, _ = fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (o *OAuth2) check() error {
	u, err := parseURL(o.TokenURL)
	if err != nil {
		return connector.Configf("InvalidAuth", "the OAuth2 token URL must be an absolute http or https URL without credentials")
	}
	o.TokenURL = u.String()
	missing := func(what string) error {
		return connector.Configf("InvalidAuth", "the OAuth2 %s flow needs %s in the Secret", o.Flow, what)
	}
	switch o.Flow {
	case FlowClientCredentials:
		if o.ClientID == "" || o.ClientSecret == "" {
			return missing("clientId and clientSecret")
		}
	case FlowRefreshToken:
		if o.RefreshToken == "" {
			return missing("refreshToken")
		}
	case FlowJWTBearer:
		if o.ClientID == "" || len(o.PrivateKey) == 0 {
			return missing("clientId and privateKey")
		}
		return checkKey(o.PrivateKey)
	default:
		return connector.Configf("InvalidAuth", "unknown OAuth2 flow %q (want ClientCredentials, RefreshToken or JWTBearer)", o.Flow)
	}
	return nil
}

// tokenCache is one source's token, kept across syncs.
type tokenCache struct {
	mu  sync.Mutex
	cfg OAuth2
	tok *oauth2.Token // the last token obtained; for RefreshToken, its refresh token is the current one
}

// token returns a token valid for at least earlyExpiry more, fetching one
// when needed; client makes the token request (guarded like the API's).
func (c *tokenCache) token(ctx context.Context, client *http.Client, observe func(string)) (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, client)
	fetched := false
	base := oauth2.TokenSource(tokenSourceFunc(func() (*oauth2.Token, error) {
		fetched = true
		return c.fetch(ctx)
	}))
	tok, err := oauth2.ReuseTokenSourceWithExpiry(c.tok, base, earlyExpiry).Token()
	if err != nil {
		return nil, c.tokenError(err)
	}
	if fetched && observe != nil {
		observe(EventTokenFetched)
	}
	c.tok = tok
	return tok, nil
}

// invalidate drops the access token the API refused (expired early, or
// revoked), keeping a refresh token.
func (c *tokenCache) invalidate(refused *oauth2.Token) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok == nil || c.tok.AccessToken != refused.AccessToken {
		return // already replaced
	}
	c.tok = &oauth2.Token{RefreshToken: c.tok.RefreshToken}
}

type tokenSourceFunc func() (*oauth2.Token, error)

func (f tokenSourceFunc) Token() (*oauth2.Token, error) { return f() }

// fetch runs the flow once.
func (c *tokenCache) fetch(ctx context.Context) (*oauth2.Token, error) {
	o := &c.cfg
	switch o.Flow {
	case FlowClientCredentials:
		cc := clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.TokenURL, Scopes: o.Scopes}
		return cc.Token(ctx)
	case FlowRefreshToken:
		rt := o.RefreshToken
		if c.tok != nil && c.tok.RefreshToken != "" {
			rt = c.tok.RefreshToken // the server may have rotated it
		}
		cfg := oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: o.TokenURL}, Scopes: o.Scopes}
		return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}
	jc := jwt.Config{Email: o.ClientID, PrivateKey: o.PrivateKey, Subject: o.Subject, Audience: o.Audience,
		TokenURL: o.TokenURL, Scopes: o.Scopes, Expires: jwtLifetime}
	return jc.TokenSource(ctx).Token()
}

// checkKey accepts a PEM RSA private key (PKCS #1 or #8), as the JWT signer
// needs; the message never quotes it.
func checkKey(pemKey []byte) error {
	bad := connector.Configf("InvalidAuth", "the OAuth2 privateKey is not a PEM RSA private key")
	block, _ := pem.Decode(pemKey)
	if block == nil {
		return bad
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if _, ok := k.(*rsa.PrivateKey); err != nil || !ok {
		return bad
	}
	return nil
}

// tokenError says why no token was obtained, naming the endpoint as
// scheme://host/path, the vendor's error code and description, and never a
// credential: a refusal (4xx) is the user's to fix (Stalled, reason
// TokenRejected), anything else may pass.
func (c *tokenCache) tokenError(err error) error {
	where := "the OAuth2 token endpoint"
	if u, perr := url.Parse(c.cfg.TokenURL); perr == nil {
		where += " " + redact(u)
	}
	if connector.IsConfig(err) {
		return err
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		code := re.Response.StatusCode
		if code == http.StatusTooManyRequests || code >= 500 {
			return fmt.Errorf("%s: HTTP %d %s", where, code, http.StatusText(code))
		}
		return connector.Configf(ReasonTokenRejected, "%s refused the credentials (HTTP %d): %s",
			where, code, vendorError(re, c.cfg.secrets()))
	}
	if netguard.IsDenied(err) {
		return connector.Configf("DestinationDenied", "%s: the destination address is in a denied range (the manager's --deny-source-cidrs)", where)
	}
	return fmt.Errorf("%s: could not get a token", where)
}

// ReasonTokenRejected is the Stalled reason of a token endpoint's refusal (a
// revoked refresh token, a wrong client secret, an unapproved JWT issuer).
const ReasonTokenRejected = "TokenRejected"

// vendorError is the token endpoint's error code and description: RFC 6749's
// error and error_description, HubSpot's status and message. Only word
// characters of the code are kept, and a description that contains a
// credential is left out.
func vendorError(re *oauth2.RetrieveError, secrets []string) string {
	code, desc := re.ErrorCode, re.ErrorDescription
	if code == "" {
		var body map[string]any
		_ = json.Unmarshal(re.Body, &body)
		code = firstString(body, "error", "status", "errorCode", "category")
		desc = firstString(body, "error_description", "message")
	}
	code = strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return -1
	}, code)
	if len(code) > 64 {
		code = code[:64]
	}
	if code == "" {
		code = "no error code"
	}
	if desc == "" || len(desc) > 200 || !validValue(desc) || containsAny(desc, secrets) {
		return code
	}
	return code + " (" + desc + ")"
}

func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

func containsAny(s string, secrets []string) bool {
	for _, v := range secrets {
		if v != "" && (strings.Contains(s, v) || len(v) >= 8 && strings.Contains(v, s)) {
			return true
		}
	}
	return false
}
