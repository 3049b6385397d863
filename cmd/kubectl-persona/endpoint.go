package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// endpointClient calls the manager's query endpoint.
type endpointClient struct {
	base *url.URL
	// http adds the credentials (client-go's transport).
	http *http.Client
	// token is the kubeconfig's static token, if any: scrubbed from errors.
	token string
}

// defaultTimeout bounds a request when --request-timeout is not given: a
// preview over a large namespace takes a few seconds.
const defaultTimeout = 2 * time.Minute

// endpointClient builds the client from the flags and the kubeconfig's
// credentials: client-go's own transport, so whatever the kubeconfig uses to
// get a token (a static token or token file, an exec plugin such as a cloud
// provider's or an OIDC login helper, an auth-provider) works as for kubectl.
func (o *options) endpointClient() (*endpointClient, error) {
	base, err := endpointURL(o.endpoint)
	if err != nil {
		return nil, err
	}
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	tlsCfg, err := o.endpointTLS()
	if err != nil {
		return nil, err
	}
	ecfg, err := endpointConfig(cfg, base, tlsCfg)
	if err != nil {
		return nil, err
	}
	hc, err := rest.HTTPClientFor(ecfg)
	if err != nil {
		return nil, fmt.Errorf("configuring the query endpoint's client: %w", err)
	}
	hc.Timeout = cfg.Timeout
	if hc.Timeout <= 0 {
		hc.Timeout = defaultTimeout
	}
	return &endpointClient{base: base, token: cfg.BearerToken, http: hc}, nil
}

func endpointURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("no query endpoint: pass --endpoint https://HOST:PORT or set $" + envEndpoint +
			" (for a cluster install: kubectl -n persona-operator-system port-forward svc/persona-operator-query 8444, then --endpoint https://127.0.0.1:8444)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--endpoint %q: must be https://HOST:PORT (%w)", raw, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		// The bearer token must never travel in clear text.
		return nil, fmt.Errorf("--endpoint %q: must be https://HOST:PORT", raw)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, fmt.Errorf("--endpoint %q: must be https://HOST:PORT, without a path", raw)
	}
	u.Path = ""
	return u, nil
}

// endpointConfig is the kubeconfig's authentication aimed at the endpoint:
// the same token source, the endpoint's own address and server trust. The
// endpoint authenticates callers by TokenReview, which checks bearer tokens
// only, so a kubeconfig whose only credential is a client certificate (or
// basic auth) is refused here with a clear error rather than by a 401.
func endpointConfig(cfg *rest.Config, base *url.URL, tlsCfg rest.TLSClientConfig) (*rest.Config, error) {
	if cfg.Impersonate.UserName != "" || cfg.Impersonate.UID != "" || len(cfg.Impersonate.Groups) > 0 {
		return nil, errors.New("impersonation (--as, --as-group, --as-uid) is not supported by the query endpoint: it authorizes the token's own identity")
	}
	if cfg.BearerToken == "" && cfg.BearerTokenFile == "" && cfg.ExecProvider == nil && cfg.AuthProvider == nil {
		return nil, errors.New("the kubeconfig has no bearer token for this context: the query endpoint checks callers with " +
			"TokenReview, which accepts bearer tokens only (a static token, a token file, or one from an exec or auth-provider " +
			"plugin), not client certificates; use such a context, or pass --token")
	}
	out := rest.AnonymousClientConfig(cfg)
	out.Host = base.String()
	out.TLSClientConfig = tlsCfg
	out.BearerToken, out.BearerTokenFile = cfg.BearerToken, cfg.BearerTokenFile
	out.ExecProvider, out.AuthProvider, out.AuthConfigPersister = cfg.ExecProvider, cfg.AuthProvider, cfg.AuthConfigPersister
	return out, nil
}

// endpointTLS is the trust of the endpoint's certificate from the flags:
// kubectl's own --certificate-authority is the API server's.
func (o *options) endpointTLS() (rest.TLSClientConfig, error) {
	switch {
	case o.endpointCA != "" && o.endpointInsecure:
		return rest.TLSClientConfig{}, errors.New("--endpoint-certificate-authority and --endpoint-insecure-skip-tls-verify are mutually exclusive")
	case o.endpointInsecure:
		return rest.TLSClientConfig{Insecure: true}, nil
	case o.endpointCA != "":
		pem, err := os.ReadFile(o.endpointCA)
		if err != nil {
			return rest.TLSClientConfig{}, fmt.Errorf("--endpoint-certificate-authority: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return rest.TLSClientConfig{}, fmt.Errorf("--endpoint-certificate-authority %s: no PEM certificate in it", o.endpointCA)
		}
		return rest.TLSClientConfig{CAData: pem}, nil
	}
	return rest.TLSClientConfig{}, nil
}

// do sends one request and decodes the JSON answer into out. An error answer
// (a Kubernetes Status) becomes an apiError.
func (c *endpointClient) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := *c.base
	u.Path = path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("calling the query endpoint %s: %w", c.base, scrub(err, c.token))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the query endpoint's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return statusError(resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the query endpoint's answer is not what this plugin expects (a different version?): %w", err)
	}
	return nil
}

// scrub makes sure an error never carries the token (url.Error holds the
// URL only, but be certain).
func scrub(err error, token string) error {
	if token != "" && strings.Contains(err.Error(), token) {
		return errors.New(strings.ReplaceAll(err.Error(), token, "<token>"))
	}
	return err
}

// apiError is an error answer of the endpoint.
type apiError struct {
	code   int
	reason metav1.StatusReason
	msg    string
}

func (e *apiError) Error() string {
	hint := ""
	switch e.code {
	case http.StatusUnauthorized:
		hint = " (the API server did not accept the token sent: check the kubeconfig context or --token; " +
			"an exec plugin that returns a client certificate instead of a token cannot be used)"
	case http.StatusForbidden:
		hint = " (a Role granting get on personas/explain and personas/preview is needed; see docs/kubectl-persona.md)"
	}
	return fmt.Sprintf("Error from server (%s): %s%s", e.reason, e.msg, hint)
}

func statusError(code int, body []byte) error {
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" {
		snippet := strings.TrimSpace(string(body))
		if len(snippet) > 200 {
			snippet = snippet[:200] + "…"
		}
		return &apiError{code: code, reason: metav1.StatusReason(http.StatusText(code)), msg: snippet}
	}
	e := &apiError{code: code, reason: st.Reason, msg: st.Message}
	if code == http.StatusUnprocessableEntity {
		return &codeError{code: exitInvalid, err: e}
	}
	return e
}
