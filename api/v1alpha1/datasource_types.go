package v1alpha1

import (
	"fmt"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DataSourceType names the connector that fetches a DataSource's records.
// +kubebuilder:validation:Enum=Inline;HTTP;PostgreSQL;Events
type DataSourceType string

// Connector types.
const (
	DataSourceInline     DataSourceType = "Inline"
	DataSourceHTTP       DataSourceType = "HTTP"
	DataSourcePostgreSQL DataSourceType = "PostgreSQL"
	// DataSourceEvents reads the events sent to the manager's Segment-compatible
	// ingest endpoint (docs/events.md).
	DataSourceEvents DataSourceType = "Events"
)

// Entity says what each record of a DataSource describes.
// +kubebuilder:validation:Enum=User;Account;Signal
type Entity string

// Entities.
const (
	// EntityUser records are one user each, keyed by user id.
	EntityUser Entity = "User"
	// EntityAccount records are one account each, keyed by account id.
	EntityAccount Entity = "Account"
	// EntitySignal records are one-to-many facts about a user (tickets, feature
	// requests, events), gathered into one list attribute on the user.
	EntitySignal Entity = "Signal"
)

// RecordFormat is the encoding of inline or ConfigMap records.
// +kubebuilder:validation:Enum=CSV;NDJSON;JSON
type RecordFormat string

// Record formats.
const (
	FormatCSV    RecordFormat = "CSV"
	FormatNDJSON RecordFormat = "NDJSON"
	FormatJSON   RecordFormat = "JSON"
)

// AttributeType is the type an attribute has in Persona rules.
// +kubebuilder:validation:Enum=String;Int;Double;Bool;Timestamp;Duration;List;Map
type AttributeType string

// Attribute types.
const (
	TypeString    AttributeType = "String"
	TypeInt       AttributeType = "Int"
	TypeDouble    AttributeType = "Double"
	TypeBool      AttributeType = "Bool"
	TypeTimestamp AttributeType = "Timestamp"
	TypeDuration  AttributeType = "Duration"
	TypeList      AttributeType = "List"
	TypeMap       AttributeType = "Map"
)

// HTTPMethod is the HTTP connector's request method.
// +kubebuilder:validation:Enum=GET;POST
type HTTPMethod string

// HTTP methods.
const (
	HTTPMethodGet  HTTPMethod = "GET"
	HTTPMethodPost HTTPMethod = "POST"
)

// PaginationType selects how the HTTP connector follows pages.
// +kubebuilder:validation:Enum=None;NextLink;LinkHeader;Cursor;PageNumber;Offset
type PaginationType string

// Pagination types.
const (
	PaginationNone       PaginationType = "None"
	PaginationNextLink   PaginationType = "NextLink"
	PaginationLinkHeader PaginationType = "LinkHeader"
	PaginationCursor     PaginationType = "Cursor"
	PaginationPageNumber PaginationType = "PageNumber"
	PaginationOffset     PaginationType = "Offset"
)

// OAuth2Flow is how the HTTP connector obtains its OAuth2 access token.
// +kubebuilder:validation:Enum=ClientCredentials;RefreshToken;JWTBearer
type OAuth2Flow string

// OAuth2 flows.
const (
	OAuth2ClientCredentials OAuth2Flow = "ClientCredentials"
	OAuth2RefreshToken      OAuth2Flow = "RefreshToken"
	OAuth2JWTBearer         OAuth2Flow = "JWTBearer"
)

// WatermarkFormat is how an HTTP incremental sync writes its watermark in the
// query parameter.
// +kubebuilder:validation:Enum=RFC3339;UnixSeconds;UnixMillis
type WatermarkFormat string

// Watermark formats.
const (
	WatermarkRFC3339     WatermarkFormat = "RFC3339"
	WatermarkUnixSeconds WatermarkFormat = "UnixSeconds"
	WatermarkUnixMillis  WatermarkFormat = "UnixMillis"
)

// LoadMode says whether a DataSource's records are loaded into the manager's
// memory.
// +kubebuilder:validation:Enum=Memory;None
type LoadMode string

// Load modes.
const (
	// LoadMemory loads the records into the manager's memory at each sync.
	LoadMemory LoadMode = "Memory"
	// LoadNone never loads them: they are read where they live, by personas
	// evaluated in the database.
	LoadNone LoadMode = "None"
)

// DataSourceSpec declares where records come from and how they map to user or
// account attributes.
// +kubebuilder:validation:XValidation:rule="self.type != 'Inline' || (has(self.inline) && !has(self.http) && !has(self.postgres) && !has(self.events))",message="type Inline requires spec.inline and forbids spec.http, spec.postgres and spec.events"
// +kubebuilder:validation:XValidation:rule="self.type != 'HTTP' || (has(self.http) && !has(self.inline) && !has(self.postgres) && !has(self.events))",message="type HTTP requires spec.http and forbids spec.inline, spec.postgres and spec.events"
// +kubebuilder:validation:XValidation:rule="self.type != 'PostgreSQL' || (has(self.postgres) && !has(self.inline) && !has(self.http) && !has(self.events))",message="type PostgreSQL requires spec.postgres and forbids spec.inline, spec.http and spec.events"
// +kubebuilder:validation:XValidation:rule="self.type != 'Events' || (has(self.events) && !has(self.inline) && !has(self.http) && !has(self.postgres) && self.entity == 'User')",message="type Events requires spec.events and entity User, and forbids spec.inline, spec.http and spec.postgres"
// +kubebuilder:validation:XValidation:rule="self.type == 'Events' || size(self.attributes) >= 1",message="spec.attributes needs at least one attribute"
// +kubebuilder:validation:XValidation:rule="self.type != 'Events' || size(self.attributes) + (has(self.events.aggregates) ? size(self.events.aggregates) : 0) >= 1",message="type Events needs at least one attribute or aggregate"
// +kubebuilder:validation:XValidation:rule="self.entity != 'Signal' || has(self.signal)",message="entity Signal requires spec.signal"
// +kubebuilder:validation:XValidation:rule="self.entity == 'Signal' || !has(self.signal)",message="spec.signal is only allowed with entity Signal"
// +kubebuilder:validation:XValidation:rule="self.entity != 'Account' || has(self.key.accountId)",message="entity Account requires spec.key.accountId"
// +kubebuilder:validation:XValidation:rule="!has(self.load) || self.load != 'None' || self.type == 'PostgreSQL'",message="load None is only for type PostgreSQL: only a PostgreSQL source is read where it lives (by personas evaluated in the database)"
// +kubebuilder:validation:XValidation:rule="self.entity != 'Signal' || !has(self.http) || !has(self.http.incremental)",message="spec.http.incremental is not supported for entity Signal: a user's list is replaced whole, and an HTTP API cannot be asked for every row of the users whose rows changed"
type DataSourceSpec struct {
	// type selects the connector; exactly the matching one of inline, http or
	// postgres must be set.
	// +required
	Type DataSourceType `json:"type"`

	// entity says what each record describes: a User, an Account, or a Signal
	// (many records per user, gathered into a list attribute on the user). Defaults to User.
	// +kubebuilder:default=User
	// +optional
	Entity Entity `json:"entity,omitempty"`

	// key names the record fields that identify the user and the account. A User
	// record's accountId joins the user to its account. Defaults to {userId: id}.
	// +kubebuilder:default={userId: "id"}
	// +optional
	Key RecordKey `json:"key,omitempty"`

	// signal configures how Signal records become a list attribute on the user.
	// +optional
	Signal *SignalSpec `json:"signal,omitempty"`

	// inline holds records in the spec or in a ConfigMap key. GitOps-friendly.
	// +optional
	Inline *InlineSource `json:"inline,omitempty"`

	// http fetches records from a JSON API.
	// +optional
	HTTP *HTTPSource `json:"http,omitempty"`

	// postgres streams records from a SQL query.
	// +optional
	Postgres *PostgresSource `json:"postgres,omitempty"`

	// events turns the calls sent to the manager's Segment-compatible ingest
	// endpoint with this source's write key into attributes (docs/events.md).
	// +optional
	Events *EventsSource `json:"events,omitempty"`

	// serviceAccountName is the ServiceAccount of this namespace the manager
	// acts as (by impersonation) to read the Secrets and ConfigMaps this source
	// references, so the API server authorizes each read against that
	// ServiceAccount's RBAC, not the manager's. Unset: the manager's
	// --default-service-account; when that is unset too, the manager reads as
	// itself, unless it runs with --require-service-account, which stalls the
	// source. See docs/security.md.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// attributes declares the schema this source provides: each attribute's name,
	// type and where its value comes from. Persona rules are type-checked against
	// the union of the namespace's schemas. Record fields not listed are ignored.
	// For type Events they are identify traits (user attributes) and group
	// traits (entity Account).
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	// +required
	Attributes []AttributeMapping `json:"attributes"`

	// priority decides which source wins when two set the same attribute of the
	// same user or account: the higher priority wins; on a tie the DataSource whose
	// name sorts first wins. Deterministic whatever the sync order. Defaults to 0.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=-1000
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Priority int32 `json:"priority,omitempty"`

	// interval between periodic syncs. Defaults to 5m.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="interval must be at least 10s"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// timeout bounds one sync, connection included. Defaults to 60s.
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1h')",message="timeout must be greater than 0s and at most 1h"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// maxShrinkPercent is the circuit breaker: a sync whose record count shrinks by
	// more than this percentage against the last applied one is held back (the last
	// good data stays, status says SuspiciousShrink) until a user forces it with the
	// personas.usersuccess.io/force-apply annotation. 100 disables the check. Defaults to 50.
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxShrinkPercent int32 `json:"maxShrinkPercent,omitempty"`

	// maxRejectPercent is the share of records a sync may reject (malformed, or
	// failing the attribute mapping) before the DataSource reports it: above it,
	// the Degraded condition is True with reason RecordsRejected and a Warning
	// Event names the count. The accepted records still apply. Default 10.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxRejectPercent *int32 `json:"maxRejectPercent,omitempty"`

	// maxStaleness sets the Stale condition when the last successful sync is older,
	// so every consumer can tell the data is old. Unset: never stale.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +optional
	MaxStaleness *metav1.Duration `json:"maxStaleness,omitempty"`

	// suspend stops periodic syncs; the last good data stays in use.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// load says whether syncs load this source's records into the manager's
	// memory. Memory (the default): every sync loads them, for personas
	// evaluated in memory, kubectl persona explain and preview, and playbook
	// payloads. None (PostgreSQL only): never loaded nor synced; the records
	// stay in the database and are read there by personas evaluated in it
	// (Persona spec.evaluation Database, or Auto when the rule translates), so
	// the manager's memory does not grow with them. A persona evaluated in
	// memory that reads this source's attributes, and explain and preview
	// over it, are refused with the reason. Status says NotLoaded, after the
	// query has been checked against the database (its columns described).
	// +kubebuilder:default=Memory
	// +optional
	Load LoadMode `json:"load,omitempty"`
}

// RecordKey names the identifying fields of a record.
type RecordKey struct {
	// userId is the record field holding the user id (User and Signal records).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	UserID string `json:"userId,omitempty"`
	// accountId is the record field holding the account id: on User records it
	// joins the user to an account; on Account records it is the key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	AccountID string `json:"accountId,omitempty"`
}

// SignalSpec turns one-to-many records into a list attribute on the user.
type SignalSpec struct {
	// attribute is the name of the user's list attribute, e.g. tickets, so rules can
	// say size(user.tickets.filter(t, t.status == "open")) > 2.
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Attribute string `json:"attribute"`
	// valueAttribute, when set, makes the list hold that one attribute's values
	// instead of a map per record, e.g. "audit_log" in user.featureRequests.
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	// +kubebuilder:validation:MaxLength=63
	// +optional
	ValueAttribute string `json:"valueAttribute,omitempty"`
}

// InlineSource holds records in the spec or in a ConfigMap key.
// +kubebuilder:validation:XValidation:rule="has(self.data) != has(self.configMapRef)",message="exactly one of spec.inline.data and spec.inline.configMapRef must be set"
type InlineSource struct {
	// format of the records: CSV with a header row, NDJSON, or a JSON array.
	// +required
	Format RecordFormat `json:"format"`
	// data holds the records themselves. Keep it small; use a ConfigMap or another
	// connector for large sets.
	// +kubebuilder:validation:MaxLength=262144
	// +optional
	Data string `json:"data,omitempty"`
	// configMapRef reads the records from a ConfigMap key in the same namespace.
	// +optional
	ConfigMapRef *ConfigMapKeySelector `json:"configMapRef,omitempty"`
}

// HTTPSource fetches records from a JSON API: with GET, or with POST and a
// JSON body (a search endpoint). TLS verification is always on.
// +kubebuilder:validation:XValidation:rule="[has(self.bearerTokenSecretRef), has(self.basicAuthSecretRef), has(self.oauth2)].filter(x, x).size() <= 1",message="spec.http.bearerTokenSecretRef, basicAuthSecretRef and oauth2 are mutually exclusive"
// +kubebuilder:validation:XValidation:rule="(has(self.method) && self.method == 'POST') == has(self.body)",message="spec.http.body goes with method POST, and method POST needs a body"
// +kubebuilder:validation:XValidation:rule="!has(self.pagination) || self.pagination.type != 'Cursor' || has(self.pagination.cursorParam) != (has(self.body) && self.body.contains('\"{cursor}\"'))",message="pagination type Cursor sends the cursor in cursorParam or in the body's \"{cursor}\" placeholder: exactly one of them"
// +kubebuilder:validation:XValidation:rule="!has(self.body) || !self.body.contains('{cursor}') || (has(self.pagination) && self.pagination.type == 'Cursor')",message="the body's {cursor} placeholder needs pagination type Cursor"
// +kubebuilder:validation:XValidation:rule="!has(self.body) || !self.body.contains('{since}') || has(self.incremental)",message="the body's {since} placeholder needs spec.http.incremental"
// +kubebuilder:validation:XValidation:rule="!has(self.incremental) || has(self.incremental.param) || (has(self.body) && self.body.contains('\"{since}\"'))",message="spec.http.incremental needs param, or a POST body with a \"{since}\" placeholder"
// +kubebuilder:validation:XValidation:rule="!has(self.pagination) || !has(self.pagination.maxResults) || (has(self.incremental) && has(self.body) && self.body.contains('\"{since}\"'))",message="pagination.maxResults needs spec.http.incremental and a POST body with a \"{since}\" placeholder: each new query starts from the last watermark read"
type HTTPSource struct {
	// url of the listing, http or https.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'http' || url(self).getScheme() == 'https')",message="url must be an absolute http or https URL"
	// +required
	URL string `json:"url"`
	// method of every page's request: GET (default) or POST, which sends
	// body (a search endpoint: HubSpot's /crm/v3/objects/<type>/search,
	// Intercom's /contacts/search).
	// +kubebuilder:default=GET
	// +optional
	Method HTTPMethod `json:"method,omitempty"`
	// body is the JSON request body of a POST, a template: a JSON string value
	// that is exactly "{since}" becomes the watermark (a number for the Unix
	// formats, a string for RFC3339; the Unix epoch on a full load), and one
	// that is exactly "{cursor}" the next page's cursor (the member is left
	// out on the first page). Placeholders are whole values, never part of a
	// string; values are JSON-encoded.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=16384
	// +optional
	Body string `json:"body,omitempty"`
	// headers added to every request. Values may come from Secrets.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Headers []HTTPHeader `json:"headers,omitempty"`
	// bearerTokenSecretRef sends "Authorization: Bearer <token>" with the token from
	// this Secret key.
	// +optional
	BearerTokenSecretRef *SecretKeySelector `json:"bearerTokenSecretRef,omitempty"`
	// basicAuthSecretRef names a Secret with "username" and "password" keys for
	// HTTP basic authentication.
	// +optional
	BasicAuthSecretRef *LocalObjectReference `json:"basicAuthSecretRef,omitempty"`
	// caSecretRef names a Secret key holding PEM CA certificates to trust in
	// addition to the system pool.
	// +optional
	CASecretRef *SecretKeySelector `json:"caSecretRef,omitempty"`
	// recordsPath is the dot-separated path to the records array in the response,
	// e.g. "data.users". Empty: the response body is the array.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	RecordsPath string `json:"recordsPath,omitempty"`
	// maxResponseBytes caps each response body; a larger one fails the sync. Defaults to 67108864 (64 MiB).
	// +kubebuilder:default=67108864
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=1073741824
	// +optional
	MaxResponseBytes int64 `json:"maxResponseBytes,omitempty"`
	// pagination follows further pages.
	// +optional
	Pagination *HTTPPagination `json:"pagination,omitempty"`
	// oauth2 gets the bearer token from an OAuth2 token endpoint, cached per
	// DataSource and refreshed before it expires. Cannot be combined with
	// bearerTokenSecretRef or basicAuthSecretRef.
	// +optional
	OAuth2 *HTTPOAuth2 `json:"oauth2,omitempty"`
	// rateLimit is this source's request budget and how it waits out the
	// server's limits (429/503 with Retry-After, RateLimit headers).
	// +optional
	RateLimit *HTTPRateLimit `json:"rateLimit,omitempty"`
	// incremental, when set, makes every sync after the first full load send
	// the last watermark as a query parameter and apply the records it returns
	// as upserts and deletes; a periodic full reconcile removes records that
	// vanished. Not for entity Signal.
	// +optional
	Incremental *HTTPIncremental `json:"incremental,omitempty"`
}

// HTTPOAuth2 obtains an access token from a token endpoint. Every credential
// comes from one Secret: clientId, clientSecret (ClientCredentials,
// RefreshToken; optional for RefreshToken), refreshToken (RefreshToken),
// privateKey (JWTBearer: a PEM RSA key).
// +kubebuilder:validation:XValidation:rule="self.flow == 'JWTBearer' || (!has(self.subject) && !has(self.audience))",message="subject and audience are only used by the JWTBearer flow"
type HTTPOAuth2 struct {
	// flow is ClientCredentials (RFC 6749 4.4), RefreshToken (RFC 6749 6) or
	// JWTBearer (RFC 7523, as Salesforce's server-to-server flow uses it).
	// +required
	Flow OAuth2Flow `json:"flow"`
	// tokenURL is the token endpoint, e.g. https://login.salesforce.com/services/oauth2/token.
	// The API's own URL may be on another host; the token endpoint receives
	// only the credentials, the API only the access token.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'http' || url(self).getScheme() == 'https')",message="tokenURL must be an absolute http or https URL"
	// +required
	TokenURL string `json:"tokenURL"`
	// secretRef names the Secret holding the credentials (keys above).
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`
	// scopes requested with the token.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=atomic
	// +optional
	Scopes []string `json:"scopes,omitempty"`
	// subject is the JWT's sub claim in the JWTBearer flow (Salesforce: the
	// user name the integration acts as).
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Subject string `json:"subject,omitempty"`
	// audience is the JWT's aud claim in the JWTBearer flow (Salesforce:
	// https://login.salesforce.com or https://test.salesforce.com). Defaults to tokenURL.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	Audience string `json:"audience,omitempty"`
}

// HTTPRateLimit is a source's request budget.
type HTTPRateLimit struct {
	// requestsPerMinute caps the API requests of this DataSource (pages and
	// retries, across syncs; the token endpoint is not counted). Requests are
	// spread evenly, never bursting above the budget. Unset: no budget; the
	// server's 429/Retry-After and RateLimit headers are still honored.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	RequestsPerMinute int32 `json:"requestsPerMinute,omitempty"`
	// maxRetries is how often one page is tried again after a 429, 502, 503 or
	// 504 (before any record of the page was read), waiting as Retry-After says (or
	// an exponential backoff with jitter) before failing the sync. The
	// listing resumes from that page, not from the first. Defaults to 5.
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=20
	// +optional
	MaxRetries *int32 `json:"maxRetries,omitempty"`
}

// Retries is maxRetries with its default.
func (r *HTTPRateLimit) Retries() int {
	if r == nil || r.MaxRetries == nil {
		return 5
	}
	return int(*r.MaxRetries)
}

// HTTPIncremental sends the watermark as a query parameter, or in the POST
// body's "{since}" placeholder.
// +kubebuilder:validation:XValidation:rule="!has(self.valueTemplate) || self.valueTemplate.contains('{since}')",message="valueTemplate must contain {since}"
// +kubebuilder:validation:XValidation:rule="!has(self.valueTemplate) || has(self.param)",message="valueTemplate is the value of param: it needs param"
// +kubebuilder:validation:XValidation:rule="!has(self.deletedValues) || has(self.deletedField)",message="deletedValues needs deletedField"
// +kubebuilder:validation:XValidation:rule="!has(self.recordPath) || has(self.url)",message="recordPath applies to the incremental url's listing: it needs url"
type HTTPIncremental struct {
	// watermarkField is the record field every change sets (e.g. updated_at):
	// an RFC 3339 string, or a number of Unix seconds (milliseconds above
	// 10^11). Its largest value is the next watermark.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +required
	WatermarkField string `json:"watermarkField"`
	// param is the query parameter that carries the watermark (minus the
	// overlap) on an incremental sync, e.g. updated_since or start_time. It
	// replaces the parameter if the URL has it; a full load sends the URL as is.
	// Optional with a POST body that has a "{since}" placeholder.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Param string `json:"param,omitempty"`
	// format of the watermark in the parameter or the body. Defaults to RFC3339.
	// +kubebuilder:default=RFC3339
	// +optional
	Format WatermarkFormat `json:"format,omitempty"`
	// valueTemplate, when set, is the parameter's value with {since} replaced
	// by the watermark, e.g. a Salesforce SOQL query "SELECT ... WHERE
	// SystemModstamp >= {since}".
	// +kubebuilder:validation:MaxLength=8192
	// +optional
	ValueTemplate string `json:"valueTemplate,omitempty"`
	// overlap is how far before the last watermark an incremental sync starts
	// again, so that late writes are not missed. Defaults to 5s.
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +optional
	Overlap *metav1.Duration `json:"overlap,omitempty"`
	// deletedField is a boolean record field: true marks a deleted user or
	// account, removed from this source (and left out of a full load).
	// +kubebuilder:validation:MaxLength=256
	// +optional
	DeletedField string `json:"deletedField,omitempty"`
	// deletedValues, when set, are the string values of deletedField that
	// mark a deleted record, instead of true (Stripe: a subscription's status
	// canceled).
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=atomic
	// +optional
	DeletedValues []string `json:"deletedValues,omitempty"`
	// url, when set, is the listing an incremental sync reads instead of
	// spec.http.url: a change feed (Stripe: /v1/events?type=customer.subscription.*).
	// param goes on it; recordsPath, pagination and credentials are the
	// same, so it must be on the same scheme, host and port (checked when
	// the source is built: InvalidIncremental).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'http' || url(self).getScheme() == 'https')",message="incremental.url must be an absolute http or https URL"
	// +optional
	URL string `json:"url,omitempty"`
	// recordPath, when set, is the dot path of the record inside each
	// element of the incremental url's listing (Stripe events: data.object).
	// The element's own watermarkField (the event's created) is the record's.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	RecordPath string `json:"recordPath,omitempty"`
	// newestFirst says the incremental listing gives the newest changes
	// first (Stripe's events): of several changes to one user or account in
	// one sync, the first listed is applied, not the last.
	// +optional
	NewestFirst bool `json:"newestFirst,omitempty"`
	// fullResyncInterval is how often a full load replaces everything,
	// removing records that were hard-deleted. Defaults to 24h.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="fullResyncInterval must be at least 1m"
	// +optional
	FullResyncInterval *metav1.Duration `json:"fullResyncInterval,omitempty"`
}

// OverlapDuration is spec.overlap with its default.
func (h *HTTPIncremental) OverlapDuration() time.Duration { return overlap(h.Overlap) }

// FullResync is spec.fullResyncInterval with its default.
func (h *HTTPIncremental) FullResync() time.Duration { return fullResync(h.FullResyncInterval) }

// HTTPHeader is one request header, with a literal value or one from a Secret.
// +kubebuilder:validation:XValidation:rule="has(self.value) != has(self.valueFrom)",message="exactly one of value and valueFrom must be set"
type HTTPHeader struct {
	// name of the header.
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +kubebuilder:validation:MaxLength=128
	// +required
	Name string `json:"name"`
	// value of the header. Use valueFrom for anything secret.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Value string `json:"value,omitempty"`
	// valueFrom reads the value from a Secret key.
	// +optional
	ValueFrom *SecretKeySelector `json:"valueFrom,omitempty"`
}

// HTTPPagination says how to find the next page. One mechanism covers the
// usual shapes: a next link in the body (relative or absolute: Salesforce
// nextRecordsUrl, Zendesk links.next) or in an RFC 8288 Link header; a cursor
// from the body (HubSpot paging.next.after, Intercom
// pages.next.starting_after) or the last record's id (Stripe starting_after);
// a page number or an offset, ended by a total or an empty page; and a flag
// that says whether more follows (Stripe has_more, Zendesk meta.has_more,
// end_of_stream).
// +kubebuilder:validation:XValidation:rule="self.type != 'NextLink' || has(self.nextLinkPath)",message="pagination type NextLink requires nextLinkPath"
// +kubebuilder:validation:XValidation:rule="self.type != 'Cursor' || (has(self.cursorPath) != has(self.cursorRecordField))",message="pagination type Cursor requires exactly one of cursorPath and cursorRecordField"
// +kubebuilder:validation:XValidation:rule="self.type == 'Cursor' || (!has(self.cursorPath) && !has(self.cursorParam) && !has(self.cursorRecordField))",message="cursorPath, cursorParam and cursorRecordField are only used by pagination type Cursor"
// +kubebuilder:validation:XValidation:rule="self.type == 'NextLink' || !has(self.nextLinkPath)",message="nextLinkPath is only used by pagination type NextLink"
// +kubebuilder:validation:XValidation:rule="self.type != 'PageNumber' || has(self.pageParam)",message="pagination type PageNumber requires pageParam"
// +kubebuilder:validation:XValidation:rule="self.type != 'Offset' || has(self.offsetParam)",message="pagination type Offset requires offsetParam"
// +kubebuilder:validation:XValidation:rule="self.type == 'PageNumber' || (!has(self.pageParam) && !has(self.startPage))",message="pageParam and startPage are only used by pagination type PageNumber"
// +kubebuilder:validation:XValidation:rule="self.type == 'Offset' || !has(self.offsetParam)",message="offsetParam is only used by pagination type Offset"
// +kubebuilder:validation:XValidation:rule="self.type == 'PageNumber' || self.type == 'Offset' || !has(self.totalPath)",message="totalPath is only used by pagination types PageNumber and Offset"
// +kubebuilder:validation:XValidation:rule="has(self.pageSizeParam) == has(self.pageSize)",message="pageSizeParam and pageSize go together"
// +kubebuilder:validation:XValidation:rule="self.type != 'None' || (!has(self.hasMorePath) && !has(self.endPath))",message="hasMorePath and endPath need a pagination type other than None"
type HTTPPagination struct {
	// type of pagination: None; NextLink (the body holds the next page's URL);
	// LinkHeader (an RFC 8288 Link header with rel="next"); Cursor (a cursor
	// from the body, or the last record's field, sent back as a query
	// parameter); PageNumber (a page number parameter, from startPage); Offset
	// (an offset parameter, advanced by the records read). Defaults to None.
	// +kubebuilder:default=None
	// +optional
	Type PaginationType `json:"type,omitempty"`
	// cursorRecordField: the cursor is this field of the page's last record
	// (Stripe: id, sent as starting_after). Instead of cursorPath.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	CursorRecordField string `json:"cursorRecordField,omitempty"`
	// hasMorePath is the dot path of a boolean: false ends the listing
	// (Stripe has_more, Zendesk meta.has_more).
	// +kubebuilder:validation:MaxLength=256
	// +optional
	HasMorePath string `json:"hasMorePath,omitempty"`
	// endPath is the dot path of a boolean: true ends the listing (Zendesk
	// incremental exports' end_of_stream).
	// +kubebuilder:validation:MaxLength=256
	// +optional
	EndPath string `json:"endPath,omitempty"`
	// pageParam is the query parameter of the page number (PageNumber).
	// +kubebuilder:validation:MaxLength=128
	// +optional
	PageParam string `json:"pageParam,omitempty"`
	// startPage is the first page's number (PageNumber). Defaults to 1.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	// +optional
	StartPage *int32 `json:"startPage,omitempty"`
	// offsetParam is the query parameter of the offset (Offset): the number of
	// records read before the page.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	OffsetParam string `json:"offsetParam,omitempty"`
	// pageSizeParam and pageSize set the page size on every request (e.g.
	// limit=100, per_page=100).
	// +kubebuilder:validation:MaxLength=128
	// +optional
	PageSizeParam string `json:"pageSizeParam,omitempty"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	PageSize int32 `json:"pageSize,omitempty"`
	// totalPath is the dot path of the total number of records (PageNumber,
	// Offset): the listing ends once that many were read. Without it, a page
	// with no records ends the listing.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	TotalPath string `json:"totalPath,omitempty"`
	// nextLinkPath is the dot-separated path to the next page's URL; empty or
	// absent ends the listing.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	NextLinkPath string `json:"nextLinkPath,omitempty"`
	// cursorPath is the dot-separated path to the next cursor; empty or absent
	// ends the listing.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	CursorPath string `json:"cursorPath,omitempty"`
	// cursorParam is the query parameter that carries the cursor. A POST
	// body with a "{cursor}" placeholder carries it instead.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	CursorParam string `json:"cursorParam,omitempty"`
	// maxResults is the most results one query returns, however it is paged
	// (HubSpot's search: 10000). Once a query has returned that many, the
	// listing goes on with a new query whose {since} is the largest
	// watermark read so far: the body must sort by the watermark ascending.
	// Needs spec.http.incremental and a "{since}" in the body.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	MaxResults int32 `json:"maxResults,omitempty"`
	// maxPages stops a runaway listing; reaching it fails the sync. Defaults to 1000.
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MaxPages int32 `json:"maxPages,omitempty"`
}

// PostgresSource streams the rows of a SQL query.
type PostgresSource struct {
	// dsnSecretRef names the Secret key that holds the connection string
	// (postgres://user:password@host:port/db?sslmode=...). It is never logged.
	// +required
	DSNSecretRef SecretKeySelector `json:"dsnSecretRef"`
	// query is one read-only SELECT; each row is a record and column names are
	// its fields. It runs in a read-only transaction.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=65536
	// +required
	Query string `json:"query"`
	// incremental, when set, makes every sync after the first full load ask only
	// for the rows changed since the last one (a watermark column), applied as
	// upserts and deletes; a periodic full reconcile removes rows that vanished.
	// Not for entity Signal (its rows have no key to upsert).
	// +optional
	Incremental *PostgresIncremental `json:"incremental,omitempty"`
}

// PostgresIncremental configures watermark polling of a PostgreSQL query.
type PostgresIncremental struct {
	// watermarkColumn is a timestamp column of the query's result that every
	// insert and update sets (e.g. updated_at, maintained by a trigger). An
	// incremental sync runs SELECT * FROM (<query>) q WHERE <column> >= $1
	// ORDER BY <column>, with $1 the last watermark minus the overlap.
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	WatermarkColumn string `json:"watermarkColumn"`
	// overlap is how far before the last watermark an incremental sync starts
	// again, so that rows committed late with an earlier timestamp (a long
	// transaction) are not missed. Rows read twice are applied once.
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +optional
	Overlap *metav1.Duration `json:"overlap,omitempty"`
	// deletedColumn is a boolean column of the query's result: a row where it is
	// true is a soft-deleted user or account and is removed from this source
	// (and left out of a full load).
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	// +kubebuilder:validation:MaxLength=63
	// +optional
	DeletedColumn string `json:"deletedColumn,omitempty"`
	// fullResyncInterval is how often a full load replaces everything, removing
	// rows that were hard-deleted (an incremental sync cannot see them).
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="fullResyncInterval must be at least 1m"
	// +optional
	FullResyncInterval *metav1.Duration `json:"fullResyncInterval,omitempty"`
	// notifyChannel, when set, makes the manager LISTEN on this channel (one
	// connection per DataSource) and sync at once when the database NOTIFYs it,
	// instead of waiting for the interval. The payload is ignored. Lower case:
	// PostgreSQL folds an unquoted NOTIFY name to lower case.
	// +kubebuilder:validation:Pattern=`^[a-z_][a-z0-9_]*$`
	// +kubebuilder:validation:MaxLength=63
	// +optional
	NotifyChannel string `json:"notifyChannel,omitempty"`
}

// Defaults of an incremental source (PostgreSQL and HTTP).
const (
	DefaultIncrementalOverlap = 5 * time.Second
	DefaultFullResyncInterval = 24 * time.Hour
)

// OverlapDuration is spec.overlap with its default.
func (p *PostgresIncremental) OverlapDuration() time.Duration {
	return overlap(p.Overlap)
}

// FullResync is spec.fullResyncInterval with its default.
func (p *PostgresIncremental) FullResync() time.Duration {
	return fullResync(p.FullResyncInterval)
}

func overlap(d *metav1.Duration) time.Duration {
	if d == nil {
		return DefaultIncrementalOverlap
	}
	return d.Duration
}

func fullResync(d *metav1.Duration) time.Duration {
	if d == nil || d.Duration <= 0 {
		return DefaultFullResyncInterval
	}
	return d.Duration
}

// EventsSource declares where a namespace's events come from and which
// per-user aggregates of them become attributes.
type EventsSource struct {
	// writeKeySecretRef names the Secret key holding the write key clients send
	// as the basic-auth user name (Segment's convention). A write key belongs to
	// one namespace: another namespace's source naming the same key is refused.
	// +required
	WriteKeySecretRef SecretKeySelector `json:"writeKeySecretRef"`
	// retention is how long raw events are kept, e.g. 90d; older ones are
	// deleted. Windowed aggregates see no further back. Defaults to 90d.
	// +kubebuilder:validation:Pattern=`^[1-9][0-9]{0,4}(d|h)$`
	// +optional
	Retention string `json:"retention,omitempty"`
	// aggregates are per-user attributes computed over the user's track calls.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Aggregates []EventAggregate `json:"aggregates,omitempty"`
}

// AggregateFunction is what an event aggregate computes.
// +kubebuilder:validation:Enum=Count;DistinctDays;FirstSeen;LastSeen;LastValue;Sum
type AggregateFunction string

// Aggregate functions.
const (
	// AggregateCount counts the matching events (Int).
	AggregateCount AggregateFunction = "Count"
	// AggregateDistinctDays counts the distinct UTC days with a matching event (Int).
	AggregateDistinctDays AggregateFunction = "DistinctDays"
	// AggregateFirstSeen and AggregateLastSeen are the first and last matching
	// event's time (Timestamp); without event, of any call of the user.
	AggregateFirstSeen AggregateFunction = "FirstSeen"
	AggregateLastSeen  AggregateFunction = "LastSeen"
	// AggregateLastValue is the property's value in the latest matching event
	// that has it (of spec type).
	AggregateLastValue AggregateFunction = "LastValue"
	// AggregateSum adds the property's numeric values (Double).
	AggregateSum AggregateFunction = "Sum"
)

// EventAggregate is one per-user attribute computed over events.
// +kubebuilder:validation:XValidation:rule="!(self.function in ['LastValue', 'Sum']) || has(self.property)",message="LastValue and Sum need property"
// +kubebuilder:validation:XValidation:rule="!has(self.window) || self.function in ['Count', 'DistinctDays', 'Sum']",message="window is for Count, DistinctDays and Sum"
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.function == 'LastValue'",message="type is for LastValue (the others have a fixed type)"
type EventAggregate struct {
	// name of the user attribute, e.g. workflowDays for user.workflowDays.
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// function computes the value: Count and DistinctDays (Int), FirstSeen and
	// LastSeen (Timestamp), LastValue (type), Sum (Double).
	// +required
	Function AggregateFunction `json:"function"`
	// event is the track event name to aggregate; empty: every track call.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Event string `json:"event,omitempty"`
	// property of the event's properties that LastValue and Sum read.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Property string `json:"property,omitempty"`
	// window is the sliding window, e.g. 30d or 12h: only events in the last
	// window count, and the value changes when the oldest leaves it. Empty:
	// every retained event.
	// +kubebuilder:validation:Pattern=`^[1-9][0-9]{0,4}(d|h)$`
	// +optional
	Window string `json:"window,omitempty"`
	// type of a LastValue aggregate. Defaults to String.
	// +kubebuilder:validation:Enum=String;Int;Double;Bool;Timestamp;Duration;List;Map
	// +optional
	Type AttributeType `json:"type,omitempty"`
}

// AttributeType is the type of the attribute the aggregate provides.
func (a *EventAggregate) AttributeType() AttributeType {
	switch a.Function {
	case AggregateCount, AggregateDistinctDays:
		return TypeInt
	case AggregateFirstSeen, AggregateLastSeen:
		return TypeTimestamp
	case AggregateSum:
		return TypeDouble
	}
	if a.Type == "" {
		return TypeString
	}
	return a.Type
}

// EventsGroupPrefix marks a group call's traits among the fields of an Events
// source's records: an attribute of entity Account reads group trait
// industry from field group.industry.
const EventsGroupPrefix = "group."

// DefaultRetention is spec.events.retention's default.
const DefaultRetention = 90 * 24 * time.Hour

// ParseSpan reads a retention or window: a whole number of days (30d) or
// hours (12h). The CRD pattern admits nothing else.
func ParseSpan(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("%q is not a number of days (30d) or hours (12h)", s)
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a number of days (30d) or hours (12h)", s)
	}
	switch s[len(s)-1] {
	case 'd':
		return time.Duration(n) * 24 * time.Hour, nil
	case 'h':
		return time.Duration(n) * time.Hour, nil
	}
	return 0, fmt.Errorf("%q is not a number of days (30d) or hours (12h)", s)
}

// RetentionPeriod is spec.retention with its default.
func (e *EventsSource) RetentionPeriod() time.Duration {
	if d, err := ParseSpan(e.Retention); err == nil {
		return d
	}
	return DefaultRetention
}

// AttributeMapping declares one attribute: its name and type in Persona rules and
// where its value comes from in a record.
// +kubebuilder:validation:XValidation:rule="!(has(self.from) && has(self.expression))",message="from and expression are mutually exclusive"
type AttributeMapping struct {
	// name of the attribute in rules, e.g. nps for user.nps.
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// type the value is converted to. A value that does not convert rejects the
	// record, which is counted in status.
	// +required
	Type AttributeType `json:"type"`
	// from is the record field to read; defaults to name.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	From string `json:"from,omitempty"`
	// expression computes the value with CEL over `record` (a map of the record's
	// fields), for what renaming can't do, e.g. timestamp(record.last_seen).
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Expression string `json:"expression,omitempty"`
	// entity overrides which entity the attribute belongs to; defaults to the
	// DataSource's entity (Signal attributes land inside the signal's list).
	// +kubebuilder:validation:Enum=User;Account
	// +optional
	Entity Entity `json:"entity,omitempty"`
	// optional records may omit the field; otherwise a record without it is
	// rejected. An absent optional attribute is absent from the profile, so rules
	// guard it with has(). Defaults to true.
	// +kubebuilder:default=true
	// +optional
	Optional *bool `json:"optional,omitempty"`
}

// RecordRejection describes one rejected record without its values, which may be
// secret or personal.
type RecordRejection struct {
	// record is the 1-based record number (CSV: data row; NDJSON: line).
	Record int64 `json:"record"`
	// reason says what was wrong, naming the field but never its value.
	// +kubebuilder:validation:MaxLength=512
	Reason string `json:"reason"`
}

// DataSourceStatus is the observed state of a DataSource.
type DataSourceStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready, Reconciling, Stalled (config errors such as a bad Secret
	// ref or query), Stale (last success older than maxStaleness) and Degraded
	// (the last sync rejected more than maxRejectPercent of its records).
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// recordsAccepted is the number of records applied by the last good sync.
	// +optional
	RecordsAccepted int64 `json:"recordsAccepted"`
	// recordsRejected is the number of records the last sync rejected.
	// +optional
	RecordsRejected int64 `json:"recordsRejected"`
	// rejections are the first few rejected records of the last sync (at most 5).
	// +kubebuilder:validation:MaxItems=5
	// +optional
	Rejections []RecordRejection `json:"rejections,omitempty"`
	// lastSyncTime is when the last sync attempt finished, good or not.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
	// lastSuccessfulSyncTime is when data was last applied to the profile store.
	// +optional
	LastSuccessfulSyncTime *metav1.Time `json:"lastSuccessfulSyncTime,omitempty"`
	// lastSyncDuration is how long the last sync took.
	// +optional
	LastSyncDuration *metav1.Duration `json:"lastSyncDuration,omitempty"`
	// digest identifies the content last applied (sha256 of the normalized records),
	// so consumers can tell whether data changed.
	// +optional
	Digest string `json:"digest,omitempty"`
	// lastHandledReconcileAt is the last value of the reconcile-requested-at
	// annotation that was handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
	// lastHandledForceApply is the last value of the force-apply annotation that
	// was honoured.
	// +optional
	LastHandledForceApply string `json:"lastHandledForceApply,omitempty"`
	// referencesVersion identifies the versions of the Secrets and ConfigMaps the
	// last sync read; a change triggers a sync.
	// +optional
	ReferencesVersion string `json:"referencesVersion,omitempty"`
	// heldBackRecords is the record count of the last result the circuit breaker
	// held back (0 when the last sync was applied).
	// +optional
	HeldBackRecords int64 `json:"heldBackRecords,omitempty"`
	// incremental is where an incremental source stands (spec.postgres.incremental,
	// spec.http.incremental).
	// +optional
	Incremental *IncrementalStatus `json:"incremental,omitempty"`
}

// IncrementalStatus is where an incremental source stands.
type IncrementalStatus struct {
	// watermark is the largest watermark column value applied so far; the next
	// incremental sync asks for rows from it minus the overlap. A restart does a
	// full load first (the profile store is in memory), then continues.
	// +optional
	Watermark *metav1.Time `json:"watermark,omitempty"`
	// lastFullSyncTime is when the last full load was applied.
	// +optional
	LastFullSyncTime *metav1.Time `json:"lastFullSyncTime,omitempty"`
	// lastMode is Full or Incremental: what the last applied sync was.
	// +optional
	LastMode string `json:"lastMode,omitempty"`
	// lastUpserts and lastDeletes count the rows the last incremental sync
	// upserted and removed.
	// +optional
	LastUpserts int64 `json:"lastUpserts,omitempty"`
	// +optional
	LastDeletes int64 `json:"lastDeletes,omitempty"`
}

// DataSource pulls user, account or signal records from a connector and merges them
// into one profile per user, shared by the Personas of its namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dsrc;datasrc,categories=usersuccess
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Entity",type=string,JSONPath=`.spec.entity`,priority=1
// +kubebuilder:printcolumn:name="Records",type=integer,JSONPath=`.status.recordsAccepted`
// +kubebuilder:printcolumn:name="Rejected",type=integer,JSONPath=`.status.recordsRejected`
// +kubebuilder:printcolumn:name="Last Sync",type=date,JSONPath=`.status.lastSyncTime`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DataSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the connector and the attributes it provides.
	// +required
	Spec DataSourceSpec `json:"spec"`
	// status is the observed state, written by the controller.
	// +optional
	Status DataSourceStatus `json:"status,omitempty"`
}

// DataSourceList is a list of DataSources.
// +kubebuilder:object:root=true
type DataSourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DataSource `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DataSource{}, &DataSourceList{})
}

// Defaults of DataSourceSpec, applied by the API server (CRD defaults); the
// accessors below also apply them to objects built in code.
const (
	DefaultInterval         = 5 * time.Minute
	DefaultTimeout          = 60 * time.Second
	DefaultMaxShrinkPercent = 50
)

// SyncInterval is spec.interval or its default.
func (s *DataSourceSpec) SyncInterval() time.Duration {
	if s.Interval == nil || s.Interval.Duration <= 0 {
		return DefaultInterval
	}
	return s.Interval.Duration
}

// SyncTimeout is spec.timeout or its default.
func (s *DataSourceSpec) SyncTimeout() time.Duration {
	if s.Timeout == nil || s.Timeout.Duration <= 0 {
		return DefaultTimeout
	}
	return s.Timeout.Duration
}

// RejectLimit is maxRejectPercent with its default.
func (s *DataSourceSpec) RejectLimit() int32 {
	if s.MaxRejectPercent == nil {
		return 10
	}
	return *s.MaxRejectPercent
}
