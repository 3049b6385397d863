package main

import (
	"bytes"
	"context"
	"crypto/tls"
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
	base  *url.URL
	http  *http.Client
	token string
}

// defaultTimeout bounds a request when --request-timeout is not given: a
// preview over a large namespace takes a few seconds.
const defaultTimeout = 2 * time.Minute

// endpointClient builds the client from the flags and the kubeconfig's token.
func (o *options) endpointClient() (*endpointClient, error) {
	base, err := endpointURL(o.endpoint)
	if err != nil {
		return nil, err
	}
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	token, err := bearerToken(cfg)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := o.endpointTLS()
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	transport := &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}
	return &endpointClient{base: base, token: token, http: &http.Client{Transport: transport, Timeout: timeout}}, nil
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

// bearerToken is the kubeconfig's token: the endpoint authenticates callers by
// TokenReview, so client certificates cannot be used.
func bearerToken(cfg *rest.Config) (string, error) {
	if cfg.Impersonate.UserName != "" || cfg.Impersonate.UID != "" || len(cfg.Impersonate.Groups) > 0 {
		return "", errors.New("impersonation (--as, --as-group, --as-uid) is not supported by the query endpoint: it authorizes the token's own identity")
	}
	if cfg.BearerToken != "" {
		return cfg.BearerToken, nil
	}
	if cfg.BearerTokenFile != "" {
		b, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			return "", fmt.Errorf("reading the kubeconfig's token file: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("the kubeconfig's token file %s is empty", cfg.BearerTokenFile)
	}
	return "", errors.New("the kubeconfig has no bearer token for this context (client certificates and exec or auth-provider " +
		"credentials are not sent to the query endpoint): use a context with a token, or pass --token")
}

func (o *options) endpointTLS() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case o.endpointCA != "" && o.endpointInsecure:
		return nil, errors.New("--endpoint-certificate-authority and --endpoint-insecure-skip-tls-verify are mutually exclusive")
	case o.endpointInsecure:
		cfg.InsecureSkipVerify = true
	case o.endpointCA != "":
		pem, err := os.ReadFile(o.endpointCA)
		if err != nil {
			return nil, fmt.Errorf("--endpoint-certificate-authority: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--endpoint-certificate-authority %s: no PEM certificate in it", o.endpointCA)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
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
	req.Header.Set("Authorization", "Bearer "+c.token)
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
		hint = " (the API server did not accept the token sent: check the kubeconfig context or --token)"
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
