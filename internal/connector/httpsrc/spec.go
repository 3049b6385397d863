package httpsrc

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/connector"
)

// SecretReader returns one key of a Secret of the DataSource's namespace;
// field names the spec field that refers to it, for messages. An optional key
// that the Secret lacks is nil, not an error.
type SecretReader func(name, key, field string, optional bool) ([]byte, error)

// FromSpec is the connector configuration of an HTTP DataSource, its
// credentials read through secret. since, when not nil, makes it an
// incremental sync from that watermark (spec.http.incremental).
func FromSpec(spec *v1alpha1.DataSourceSpec, since *time.Time, secret SecretReader) (Config, error) {
	h := spec.HTTP
	cfg := Config{
		URL:              h.URL,
		Headers:          map[string]string{},
		Timeout:          spec.SyncTimeout(),
		MaxResponseBytes: h.MaxResponseBytes,
		RecordsPath:      h.RecordsPath,
		Limits:           Limits{MaxRetries: h.RateLimit.Retries()},
	}
	if h.RateLimit != nil {
		cfg.Limits.RequestsPerMinute = int(h.RateLimit.RequestsPerMinute)
	}
	for i, hd := range h.Headers {
		if hd.ValueFrom == nil {
			cfg.Headers[hd.Name] = hd.Value
			continue
		}
		v, err := secret(hd.ValueFrom.Name, hd.ValueFrom.Key, fmt.Sprintf("spec.http.headers[%d].valueFrom", i), false)
		if err != nil {
			return cfg, err
		}
		cfg.Headers[hd.Name] = string(v)
	}
	if err := credentials(h, &cfg, secret); err != nil {
		return cfg, err
	}
	if p := h.Pagination; p != nil {
		cfg.Pagination = Pagination{
			Type: string(p.Type), NextLinkPath: p.NextLinkPath, CursorPath: p.CursorPath,
			CursorParam: p.CursorParam, CursorRecordField: p.CursorRecordField,
			HasMorePath: p.HasMorePath, EndPath: p.EndPath, PageParam: p.PageParam, StartPage: 1,
			OffsetParam: p.OffsetParam, PageSizeParam: p.PageSizeParam, PageSize: int(p.PageSize),
			TotalPath: p.TotalPath, MaxPages: int(p.MaxPages),
		}
		if p.StartPage != nil {
			cfg.Pagination.StartPage = int(*p.StartPage)
		}
	}
	cfg.Method, cfg.Body = string(h.Method), h.Body
	if inc := h.Incremental; inc != nil {
		cfg.SinceFormat, cfg.WatermarkField = string(inc.Format), inc.WatermarkField
		if since != nil {
			cfg.Since = &Since{Param: inc.Param, Format: string(inc.Format), Template: inc.ValueTemplate, Time: *since}
			if inc.URL != "" { // a change feed of its own
				if err := sameHost(h.URL, inc.URL); err != nil {
					return cfg, err
				}
				cfg.URL, cfg.RecordPath = inc.URL, inc.RecordPath
			}
		}
	}
	if p := h.Pagination; p != nil {
		cfg.MaxResults = int(p.MaxResults)
	}
	return cfg, nil
}

// credentials reads the bearer token, basic auth, OAuth2 credentials and CA.
func credentials(h *v1alpha1.HTTPSource, cfg *Config, secret SecretReader) error {
	if ref := h.BearerTokenSecretRef; ref != nil {
		v, err := secret(ref.Name, ref.Key, "spec.http.bearerTokenSecretRef", false)
		if err != nil {
			return err
		}
		cfg.BearerToken = string(v)
	}
	if ref := h.BasicAuthSecretRef; ref != nil {
		user, err := secret(ref.Name, "username", "spec.http.basicAuthSecretRef", false)
		if err != nil {
			return err
		}
		pass, err := secret(ref.Name, "password", "spec.http.basicAuthSecretRef", false)
		if err != nil {
			return err
		}
		cfg.Username, cfg.Password = string(user), string(pass)
	}
	if o := h.OAuth2; o != nil {
		oc, err := oauthFromSpec(o, secret)
		if err != nil {
			return err
		}
		cfg.OAuth2 = oc
	}
	if ref := h.CASecretRef; ref != nil {
		v, err := secret(ref.Name, ref.Key, "spec.http.caSecretRef", false)
		if err != nil {
			return err
		}
		cfg.CAPEM = v
	}
	return nil
}

// oauthFromSpec reads the flow's keys of spec.http.oauth2.secretRef: the
// ones a flow needs must be there (SecretNotFound otherwise), the others are
// read when present.
func oauthFromSpec(o *v1alpha1.HTTPOAuth2, secret SecretReader) (*OAuth2, error) {
	oc := &OAuth2{Flow: string(o.Flow), TokenURL: o.TokenURL, Scopes: o.Scopes, Subject: o.Subject, Audience: o.Audience}
	need := map[string]bool{"clientId": true}
	switch o.Flow {
	case v1alpha1.OAuth2ClientCredentials:
		need["clientSecret"] = true
	case v1alpha1.OAuth2RefreshToken:
		need["refreshToken"] = true
	case v1alpha1.OAuth2JWTBearer:
		need["privateKey"] = true
	}
	for key, dst := range map[string]*string{"clientId": &oc.ClientID, "clientSecret": &oc.ClientSecret, "refreshToken": &oc.RefreshToken} {
		if o.Flow == v1alpha1.OAuth2JWTBearer && key != "clientId" {
			continue
		}
		v, err := secret(o.SecretRef.Name, key, "spec.http.oauth2.secretRef", !need[key])
		if err != nil {
			return nil, err
		}
		*dst = string(v)
	}
	if o.Flow == v1alpha1.OAuth2JWTBearer {
		v, err := secret(o.SecretRef.Name, "privateKey", "spec.http.oauth2.secretRef", false)
		if err != nil {
			return nil, err
		}
		oc.PrivateKey = v
	}
	return oc, nil
}

// sameHost refuses an incremental URL elsewhere than the URL the credentials
// were configured for.
func sameHost(base, inc string) error {
	b, err1 := url.Parse(base)
	i, err2 := url.Parse(inc)
	if err1 != nil || err2 != nil || b.Scheme != i.Scheme || !strings.EqualFold(b.Host, i.Host) {
		return connector.Configf("InvalidIncremental",
			"spec.http.incremental.url must have the scheme, host and port of spec.http.url, which the credentials are for")
	}
	return nil
}
