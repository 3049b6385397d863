package httpsrc_test

// Contract tests of the vendor recipes in config/samples/connectors: for each
// vendor, a loopback server answers with the vendor's documented shapes (the
// token endpoint, the listing and its pagination, the rate-limit headers and
// a 429 with its error body in the middle of the listing), and the recipe,
// loaded from the repository as a user would apply it, must sync exactly the
// records the server holds, resuming at the throttled page.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/cel-go/common/types/ref"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/connector"
	"github.com/usersuccess/persona-operator/internal/connector/httpsrc"
	"github.com/usersuccess/persona-operator/internal/datasource"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// vendor is one fake API: its pages, and what it saw.
type vendor struct {
	// page answers one listing request (after auth and the injected 429).
	page func(w http.ResponseWriter, r *http.Request)
	// token answers the token endpoint; nil: the API takes a static token.
	token func(w http.ResponseWriter, r *http.Request)
	// throttle writes the vendor's 429 (headers and body).
	throttle func(w http.ResponseWriter)
	// throttleAt is the request (1-based, listing requests only) answered 429 once.
	throttleAt int
	// accepts says whether an Authorization header is valid now.
	accepts func(auth string) bool
	// expired answers a request with an expired token (401, vendor's body).
	expired func(w http.ResponseWriter)

	mu       sync.Mutex
	requests []string // listing request URIs, in order, 429s included
	tokens   int      // token requests
}

func (v *vendor) serve(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && v.token != nil && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			v.mu.Lock()
			v.tokens++
			v.mu.Unlock()
			v.token(w, r)
			return
		}
		req := r.URL.RequestURI()
		if r.Method == http.MethodPost { // a search: the body is the position
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			req = "POST " + req + " " + string(body)
		}
		v.mu.Lock()
		v.requests = append(v.requests, req)
		n := len(v.requests)
		v.mu.Unlock()
		if !v.accepts(r.Header.Get("Authorization")) {
			v.expired(w)
			return
		}
		if n == v.throttleAt {
			v.throttle(w)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		v.page(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// loadRecipe reads a sample and points its URLs at srv, keeping paths and queries.
func loadRecipe(t *testing.T, file string, srv *httptest.Server) *v1alpha1.DataSource {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "samples", "connectors", file))
	if err != nil {
		t.Fatal(err)
	}
	var ds v1alpha1.DataSource
	if err := yaml.UnmarshalStrict(b, &ds); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	rehost := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		base, _ := url.Parse(srv.URL)
		u.Scheme, u.Host = base.Scheme, base.Host
		return u.String()
	}
	h := ds.Spec.HTTP
	h.URL = rehost(h.URL)
	if h.OAuth2 != nil {
		h.OAuth2.TokenURL = rehost(h.OAuth2.TokenURL)
	}
	return &ds
}

// syncResult is one sync of a recipe through the real connector, mapper
// and datasource.Run.
type syncResult struct {
	out    datasource.Outcome
	events map[string]int
}

func syncRecipe(t *testing.T, ds *v1alpha1.DataSource, secrets map[string]string, sessions *httpsrc.Sessions, mode datasource.Mode) syncResult {
	t.Helper()
	var since *time.Time
	if mode.Delta {
		since = &mode.Since
	}
	cfg, err := httpsrc.FromSpec(&ds.Spec, since, func(name, key, field string, optional bool) ([]byte, error) {
		v, ok := secrets[name+"/"+key]
		if !ok {
			if optional {
				return nil, nil
			}
			return nil, fmt.Errorf("%s: no Secret key %s/%s", field, name, key)
		}
		return []byte(v), nil
	})
	if err != nil {
		t.Fatalf("FromSpec: %v", err)
	}
	cfg.Limits.RetryBase = 10 * time.Millisecond
	var mu sync.Mutex
	events := map[string]int{}
	src, err := httpsrc.New(cfg, httpsrc.WithSession(sessions, ds.Name), httpsrc.WithObserver(func(e string) {
		mu.Lock()
		defer mu.Unlock()
		events[e]++
	}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m, err := attr.NewMapper(&ds.Spec)
	if err != nil {
		t.Fatalf("mapper: %v", err)
	}
	out := datasource.Run(context.Background(), datasource.Request{
		Name: ds.Name, Source: src, Mapper: m, MaxShrinkPercent: 50, Now: time.Now,
		Incremental: datasource.IncrementalRead(&ds.Spec, mode),
	})
	return syncResult{out: out, events: events}
}

func keys[M ~map[string]V, V any](m M) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// wantSynced checks a full sync: applied, these keys, no rejection, one
// resumed page after one throttle.
func wantSynced(t *testing.T, r syncResult, keysOf func(*profile.SourceData) []string, want ...string) {
	t.Helper()
	o := r.out
	if o.FetchErr != nil {
		t.Fatalf("sync failed: %v", o.FetchErr)
	}
	if o.Rejected != 0 {
		t.Errorf("rejected %d: %+v", o.Rejected, o.Rejections)
	}
	if got := keysOf(o.Data); !reflect.DeepEqual(got, want) {
		t.Errorf("synced %v, want %v", got, want)
	}
	if r.events[httpsrc.EventThrottled] != 1 || r.events[httpsrc.EventResumed] != 1 {
		t.Errorf("events %v: want one throttled and one resumed page", r.events)
	}
}

// wantResumed checks that the throttled request was asked again, right
// after, and that no page was asked twice otherwise (resumed, not restarted).
func wantResumed(t *testing.T, v *vendor, pages int) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.requests) != pages+1 {
		t.Fatalf("%d requests for %d pages: %q", len(v.requests), pages, v.requests)
	}
	at := v.throttleAt - 1
	if v.requests[at] != v.requests[at+1] {
		t.Errorf("after the 429 the listing asked %q, not the throttled %q again", v.requests[at+1], v.requests[at])
	}
	seen := map[string]bool{}
	for i, r := range v.requests {
		if seen[r] && i != at+1 {
			t.Errorf("request %q made twice: the listing restarted", r)
		}
		seen[r] = true
	}
}

func userKeys(d *profile.SourceData) []string    { return keys(d.Users) }
func accountKeys(d *profile.SourceData) []string { return keys(d.Accounts) }
func signalKeys(d *profile.SourceData) []string  { return keys(d.Users) }

// bearer accepts "Bearer <tok>" for the current token.
func bearer(current *string, mu *sync.Mutex) func(string) bool {
	return func(auth string) bool {
		mu.Lock()
		defer mu.Unlock()
		return auth == "Bearer "+*current
	}
}

// --- Salesforce: JWT bearer flow, SOQL queryAll with nextRecordsUrl,
// incremental on SystemModstamp with IsDeleted.

func TestRecipeSalesforce(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	type contact struct {
		ID, Account, Email, Modstamp string
		Deleted                      bool
	}
	contacts := []contact{
		{"003A", "001X", "a@example.com", "2026-05-01T10:00:00.000+0000", false},
		{"003B", "001X", "b@example.com", "2026-05-01T11:00:00.000+0000", false},
		{"003C", "001Y", "c@example.com", "2026-05-01T12:00:00.000+0000", false},
		{"003D", "001Y", "d@example.com", "2026-05-01T13:00:00.000+0000", false},
		{"003E", "001Z", "e@example.com", "2026-05-01T14:00:00.000+0000", false},
	}
	var mu sync.Mutex
	current, issued, served := "", 0, 0
	var lastQuery string
	v := &vendor{throttleAt: 2}
	v.accepts = func(auth string) bool {
		mu.Lock()
		defer mu.Unlock()
		served++
		// The session expires after three API calls, before its (unsaid) lifetime.
		return auth == "Bearer "+current && served != 4
	}
	v.expired = func(w http.ResponseWriter) {
		writeJSON(w, http.StatusUnauthorized, []map[string]string{{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}})
	}
	v.throttle = func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "0")
		writeJSON(w, http.StatusServiceUnavailable, []map[string]string{{"message": "Server Unavailable", "errorCode": "SERVER_UNAVAILABLE"}})
	}
	v.token = func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		assertion := r.PostForm.Get("assertion")
		claims, err := verifyJWT(assertion, &key.PublicKey)
		switch {
		case r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
			writeJSON(w, 400, map[string]string{"error": "unsupported_grant_type", "error_description": "grant type not supported"})
		case err != nil:
			writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "invalid assertion"})
		case claims.Iss != "3MVG9consumer" || claims.Sub != "persona-integration@example.com" ||
			claims.Aud != "https://login.salesforce.com" || claims.Exp-claims.Iat > 180:
			writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "user hasn't approved this consumer"})
		default:
			mu.Lock()
			issued++
			current = fmt.Sprintf("00Dsession!%d", issued)
			tok := current
			mu.Unlock()
			// Salesforce says no expires_in: the session lasts as the org's policy says.
			writeJSON(w, 200, map[string]string{"access_token": tok, "token_type": "Bearer", "instance_url": "https://example.my.salesforce.com",
				"id": "https://login.salesforce.com/id/00D/005", "scope": "api", "issued_at": "1777636800000", "signature": "x"})
		}
	}
	v.page = func(w http.ResponseWriter, r *http.Request) {
		// Two records a page; the next page is a relative locator URL.
		from := 0
		if loc, ok := strings.CutPrefix(r.URL.Path, "/services/data/v62.0/query/01gQL-"); ok {
			from, _ = strconv.Atoi(loc)
		} else {
			if r.URL.Path != "/services/data/v62.0/queryAll" || !strings.HasPrefix(r.URL.Query().Get("q"), "SELECT") {
				writeJSON(w, 400, []map[string]string{{"message": "unexpected", "errorCode": "MALFORMED_QUERY"}})
				return
			}
			lastQuery = r.URL.Query().Get("q")
		}
		var sel []contact
		for _, c := range contacts {
			if since, ok := strings.CutPrefix(lastQuery[strings.Index(lastQuery, "FROM Contact"):], "FROM Contact WHERE SystemModstamp >= "); ok {
				ts, _ := time.Parse(time.RFC3339, strings.Fields(since)[0])
				cm, _ := time.Parse("2006-01-02T15:04:05.000-0700", c.Modstamp)
				if cm.Before(ts) {
					continue
				}
			}
			sel = append(sel, c)
		}
		var recs []map[string]any
		for _, c := range sel[from:min(from+2, len(sel))] {
			recs = append(recs, map[string]any{"attributes": map[string]string{"type": "Contact", "url": "/services/data/v62.0/sobjects/Contact/" + c.ID},
				"Id": c.ID, "AccountId": c.Account, "Email": c.Email, "Title": nil, "LeadSource": "Web", "SystemModstamp": c.Modstamp, "IsDeleted": c.Deleted})
		}
		body := map[string]any{"totalSize": len(sel), "done": from+2 >= len(sel), "records": recs}
		if from+2 < len(sel) {
			body["nextRecordsUrl"] = fmt.Sprintf("/services/data/v62.0/query/01gQL-%d", from+2)
		}
		writeJSON(w, 200, body)
	}
	srv := v.serve(t)
	ds := loadRecipe(t, "salesforce_contacts.yaml", srv)
	secrets := map[string]string{"salesforce-jwt/clientId": "3MVG9consumer", "salesforce-jwt/privateKey": keyPEM}
	sessions := httpsrc.NewSessions()

	full := syncRecipe(t, ds, secrets, sessions, datasource.Mode{})
	wantSynced(t, full, userKeys, "003A", "003B", "003C", "003D", "003E")
	if issued != 2 || full.events[httpsrc.EventTokenRejected] != 1 {
		t.Errorf("tokens issued %d, events %v: want the expired session replaced once", issued, full.events)
	}
	if !full.out.Watermark.Equal(time.Date(2026, 5, 1, 14, 0, 0, 0, time.UTC)) {
		t.Errorf("watermark %s", full.out.Watermark)
	}

	// Incremental: one contact changed, one deleted since the watermark.
	contacts[1].Modstamp, contacts[3].Modstamp, contacts[3].Deleted = "2026-05-01T15:00:00.000+0000", "2026-05-01T15:30:00.000+0000", true
	v.throttleAt = 0
	inc := syncRecipe(t, ds, secrets, sessions, datasource.IncrementalMode(withStatus(ds, full.out.Watermark), true, false, "", time.Now()))
	o := inc.out
	if o.FetchErr != nil || o.Delta == nil || o.Accepted != 2 || o.Deletes != 1 {
		t.Fatalf("incremental: err %v delta %v upserts %d deletes %d", o.FetchErr, o.Delta != nil, o.Accepted, o.Deletes)
	}
	if !strings.Contains(lastQuery, "WHERE SystemModstamp >= 2026-05-01T13:59:00Z") {
		t.Errorf("incremental query %q: want the watermark minus the 1m overlap", lastQuery)
	}
}

// withStatus is ds after a full load that reached watermark.
func withStatus(ds *v1alpha1.DataSource, watermark time.Time) *v1alpha1.DataSource {
	d := ds.DeepCopy()
	now := metaTime(time.Now())
	wm := metaTime(watermark)
	d.Status.Incremental = &v1alpha1.IncrementalStatus{Watermark: &wm, LastFullSyncTime: &now}
	return d
}

func metaTime(t time.Time) metav1.Time { return metav1.NewTime(t) }

// --- HubSpot: OAuth refresh token (rotating access tokens with expires_in),
// the CRM v3 search API (POST, filterGroups on hs_lastmodifieddate, sorts,
// paging.next.after in the body, at most 10 000 results a query),
// X-HubSpot-RateLimit-* headers, and its 429 body.

const hubspotRefresh = "hs-refresh-7f3e9a" //nolint:gosec // a test credential

// hubspotCompany is one company of the fake CRM.
type hubspotCompany struct {
	id       int
	modified time.Time
	name     string
}

// hubspotSearch is a search request as HubSpot documents it.
type hubspotSearch struct {
	FilterGroups []struct {
		Filters []struct {
			PropertyName string          `json:"propertyName"`
			Operator     string          `json:"operator"`
			Value        json.RawMessage `json:"value"`
		} `json:"filters"`
	} `json:"filterGroups"`
	Sorts []struct {
		PropertyName string `json:"propertyName"`
		Direction    string `json:"direction"`
	} `json:"sorts"`
	Properties []string `json:"properties"`
	Limit      int      `json:"limit"`
	After      *string  `json:"after"`
}

// hubspotMaxResults is the search API's cap on one query's results.
const hubspotMaxResults = 10000

func hubspotVendor(t *testing.T, companies []hubspotCompany) (*vendor, *[]hubspotSearch) {
	var mu sync.Mutex
	current := ""
	var searches []hubspotSearch
	v := &vendor{throttleAt: 3}
	v.accepts = bearer(&current, &mu)
	v.expired = func(w http.ResponseWriter) {
		writeJSON(w, 401, map[string]string{"status": "error", "message": "Authentication credentials not found.", "category": "INVALID_AUTHENTICATION"})
	}
	v.throttle = func(w http.ResponseWriter) {
		w.Header().Set("X-HubSpot-RateLimit-Max", "100")
		w.Header().Set("X-HubSpot-RateLimit-Remaining", "0")
		w.Header().Set("X-HubSpot-RateLimit-Interval-Milliseconds", "20")
		writeJSON(w, 429, map[string]string{"status": "error", "message": "You have reached your secondly limit.",
			"errorType": "RATE_LIMIT", "policyName": "SECONDLY"})
	}
	v.token = func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f := r.PostForm
		clientID, clientSecret, basic := r.BasicAuth()
		if !basic {
			clientID, clientSecret = f.Get("client_id"), f.Get("client_secret")
		}
		if f.Get("grant_type") != "refresh_token" || f.Get("refresh_token") != hubspotRefresh || clientID != "hs-client" || clientSecret != "hs-secret" {
			writeJSON(w, 400, map[string]string{"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"})
			return
		}
		mu.Lock()
		current = fmt.Sprintf("CKX-%d", time.Now().UnixNano())
		tok := current
		mu.Unlock()
		writeJSON(w, 200, map[string]any{"token_type": "bearer", "refresh_token": hubspotRefresh, "access_token": tok, "expires_in": 1800})
	}
	invalid := func(w http.ResponseWriter, msg string) {
		writeJSON(w, 400, map[string]string{"status": "error", "message": msg, "category": "VALIDATION_ERROR"})
	}
	v.page = func(w http.ResponseWriter, r *http.Request) {
		var q hubspotSearch
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if r.Method != http.MethodPost || r.URL.Path != "/crm/v3/objects/companies/search" || r.Header.Get("Content-Type") != "application/json" || dec.Decode(&q) != nil {
			invalid(w, "Invalid input JSON")
			return
		}
		if len(q.FilterGroups) != 1 || len(q.FilterGroups[0].Filters) != 1 || len(q.Sorts) != 1 || q.Limit < 1 || q.Limit > 200 {
			invalid(w, "one filter, one sort and a limit of 1 to 200 expected")
			return
		}
		f := q.FilterGroups[0].Filters[0]
		var since int64
		if f.PropertyName != "hs_lastmodifieddate" || f.Operator != "GTE" || json.Unmarshal(f.Value, &since) != nil ||
			q.Sorts[0] != (struct {
				PropertyName string `json:"propertyName"`
				Direction    string `json:"direction"`
			}{"hs_lastmodifieddate", "ASCENDING"}) {
			invalid(w, "filter hs_lastmodifieddate GTE <ms>, sorted ASCENDING, expected")
			return
		}
		mu.Lock()
		searches = append(searches, q)
		mu.Unlock()
		after := 0
		if q.After != nil {
			var err error
			if after, err = strconv.Atoi(*q.After); err != nil {
				invalid(w, "after is not a paging cursor")
				return
			}
		}
		if after >= hubspotMaxResults {
			invalid(w, "Search results are limited to 10000 results per query.") // the documented 400
			return
		}
		var sel []hubspotCompany
		for _, c := range companies {
			if c.modified.UnixMilli() >= since {
				sel = append(sel, c)
			}
		}
		slices.SortStableFunc(sel, func(a, b hubspotCompany) int { return a.modified.Compare(b.modified) })
		end := min(after+q.Limit, len(sel), hubspotMaxResults)
		results := []map[string]any{}
		for _, c := range sel[min(after, len(sel)):end] {
			mod := c.modified.UTC().Format("2006-01-02T15:04:05.000Z")
			results = append(results, map[string]any{"id": strconv.Itoa(c.id), "archived": false,
				"createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": mod,
				"properties": map[string]any{"name": c.name, "domain": c.name + ".example", "industry": "COMPUTER_SOFTWARE",
					"numberofemployees": "25", "hs_object_id": strconv.Itoa(c.id), "hs_lastmodifieddate": mod, "createdate": "2026-01-01T00:00:00.000Z"}})
		}
		body := map[string]any{"total": len(sel), "results": results}
		if end < len(sel) {
			body["paging"] = map[string]any{"next": map[string]any{"after": strconv.Itoa(end),
				"link": "https://api.hubapi.com/crm/v3/objects/companies/search?after=" + strconv.Itoa(end)}}
		}
		w.Header().Set("X-HubSpot-RateLimit-Max", "100")
		w.Header().Set("X-HubSpot-RateLimit-Remaining", "97")
		writeJSON(w, 200, body)
	}
	return v, &searches
}

// hubspotCompanies are n companies modified a second apart from base, two by
// two (pairs share a timestamp, as a bulk import leaves them).
func hubspotCompanies(n int, base time.Time) []hubspotCompany {
	out := make([]hubspotCompany, n)
	for i := range out {
		out[i] = hubspotCompany{id: 1000 + i, modified: base.Add(time.Duration(i/2) * time.Second), name: fmt.Sprintf("company-%d", i)}
	}
	return out
}

func hubspotSecrets(refresh string) map[string]string {
	return map[string]string{"hubspot-oauth/clientId": "hs-client", "hubspot-oauth/clientSecret": "hs-secret", "hubspot-oauth/refreshToken": refresh}
}

func TestRecipeHubSpot(t *testing.T) {
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	companies := hubspotCompanies(5, base)
	v, searches := hubspotVendor(t, companies)
	srv := v.serve(t)
	ds := loadRecipe(t, "hubspot_companies.yaml", srv)
	ds.Spec.HTTP.RateLimit.RequestsPerMinute = 60000 // the recipe's 4 a second would make a slow test; TestBudgetHolds tests budgets
	// Pages of two, to have several (the recipe asks 200).
	ds.Spec.HTTP.Body = strings.Replace(ds.Spec.HTTP.Body, `"limit": 200`, `"limit": 2`, 1)
	sessions := httpsrc.NewSessions()
	r := syncRecipe(t, ds, hubspotSecrets(hubspotRefresh), sessions, datasource.Mode{})
	wantSynced(t, r, accountKeys, "1000", "1001", "1002", "1003", "1004")
	wantResumed(t, v, 3)
	d := r.out.Data
	if name, emp := attrOf(d.AccountDecls, d.AccountValues("1002"), "name"), attrOf(d.AccountDecls, d.AccountValues("1002"), "employees"); name != "company-2" || emp != int64(25) {
		t.Errorf("company 1002: name %v, employees %#v", name, emp)
	}
	// The full load asks from the epoch, the first page without after, the next with it.
	first := (*searches)[0]
	if string(first.FilterGroups[0].Filters[0].Value) != "0" || first.After != nil || (*searches)[1].After == nil || *(*searches)[1].After != "2" {
		t.Errorf("full load searches: value %s, after %v then %v", first.FilterGroups[0].Filters[0].Value, first.After, (*searches)[1].After)
	}
	if !r.out.Watermark.Equal(base.Add(2 * time.Second)) {
		t.Errorf("watermark %s", r.out.Watermark)
	}

	// Incremental: one company changed; the search from the watermark minus
	// the minute of overlap returns it and the ones within the overlap.
	companies[1].modified = base.Add(time.Hour)
	v.throttleAt = 0
	*searches = nil
	inc := syncRecipe(t, ds, hubspotSecrets(hubspotRefresh), sessions, datasource.IncrementalMode(withStatus(ds, r.out.Watermark), true, false, "", time.Now()))
	o := inc.out
	if o.FetchErr != nil || o.Delta == nil || o.Accepted != 5 {
		t.Fatalf("incremental: err %v, delta %v, %d upserts (want the 4 within the overlap and 1001)", o.FetchErr, o.Delta != nil, o.Accepted)
	}
	if got, want := string((*searches)[0].FilterGroups[0].Filters[0].Value), strconv.FormatInt(base.Add(2*time.Second-time.Minute).UnixMilli(), 10); got != want {
		t.Errorf("incremental search from %s, want the watermark minus 1m, %s", got, want)
	}
	if !o.Watermark.Equal(base.Add(time.Hour)) {
		t.Errorf("incremental watermark %s", o.Watermark)
	}
	// The next sync reuses the cached token (valid 30 min): one token request in all.
	if v.tokens != 1 {
		t.Errorf("%d token requests: want the cached token used", v.tokens)
	}
}

// A listing past the search's 10 000 results: the recipe goes on with a new
// query from the last hs_lastmodifieddate read, and every company is synced
// once the windows are put together (those on the boundary twice, as upserts).
func TestRecipeHubSpotPastTenThousand(t *testing.T) {
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	const n = 2*hubspotMaxResults + 301
	v, searches := hubspotVendor(t, hubspotCompanies(n, base))
	v.throttleAt = 60 // a 429 in the middle of the second query
	srv := v.serve(t)
	ds := loadRecipe(t, "hubspot_companies.yaml", srv)
	ds.Spec.HTTP.RateLimit.RequestsPerMinute = 600000
	r := syncRecipe(t, ds, hubspotSecrets(hubspotRefresh), httpsrc.NewSessions(), datasource.Mode{})
	if r.out.FetchErr != nil {
		t.Fatal(r.out.FetchErr)
	}
	if got := len(r.out.Data.Accounts); got != n {
		t.Errorf("synced %d companies, want %d", got, n)
	}
	if r.events[httpsrc.EventThrottled] != 1 || r.events[httpsrc.EventResumed] != 1 {
		t.Errorf("events %v", r.events)
	}
	var starts []string
	for _, q := range *searches {
		if q.After == nil {
			starts = append(starts, string(q.FilterGroups[0].Filters[0].Value))
		}
		if q.After != nil && *q.After >= "10000" && len(*q.After) >= 5 {
			t.Fatalf("a page past the cap was asked: after=%s", *q.After)
		}
	}
	// Query 2 starts at the 10 000th company's timestamp (the 4999th second),
	// query 3 at the 20 000th's, less the two boundary companies read again each time.
	want := []string{"0", strconv.FormatInt(base.Add(4999*time.Second).UnixMilli(), 10), strconv.FormatInt(base.Add(9998*time.Second).UnixMilli(), 10)}
	if !reflect.DeepEqual(starts, want) {
		t.Errorf("queries started at %v, want %v", starts, want)
	}
}

// A revoked refresh token: Stalled with HubSpot's reason, once, and no
// secret in the message.
func TestRecipeHubSpotRevoked(t *testing.T) {
	v, _ := hubspotVendor(t, hubspotCompanies(5, time.Now()))
	srv := v.serve(t)
	ds := loadRecipe(t, "hubspot_companies.yaml", srv)
	r := syncRecipe(t, ds, hubspotSecrets("revoked-refresh-token-31337"), httpsrc.NewSessions(), datasource.Mode{})
	err := r.out.FetchErr
	if reason := connector.ConfigReason(err); reason != httpsrc.ReasonTokenRejected || !strings.Contains(err.Error(), "BAD_REFRESH_TOKEN") {
		t.Fatalf("got %v (reason %q), want TokenRejected naming BAD_REFRESH_TOKEN", err, reason)
	}
	for _, s := range []string{"revoked-refresh-token-31337", "hs-secret"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the message %q contains a secret", err)
		}
	}
	if v.tokens > 2 || len(v.requests) != 0 { // x/oauth2 tries the client credentials in the header, then in the body
		t.Errorf("%d token requests, %d API requests: want one attempt and no API call", v.tokens, len(v.requests))
	}
}

// --- Zendesk: OAuth client credentials, cursor pagination with
// meta.has_more and links.next, Retry-After on 429.

func TestRecipeZendesk(t *testing.T) {
	var mu sync.Mutex
	current := ""
	v := &vendor{throttleAt: 2}
	v.accepts = bearer(&current, &mu)
	v.expired = func(w http.ResponseWriter) {
		writeJSON(w, 401, map[string]string{"error": "Couldn't authenticate you"})
	}
	v.throttle = func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "1")
		w.Header().Set("ratelimit-remaining", "0")
		w.Header().Set("ratelimit-reset", "1")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(429)
		_, _ = w.Write([]byte("Rate limit for ticket updates exceeded, please wait before updating this ticket again"))
	}
	v.token = func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		id, secret, basic := r.BasicAuth()
		if !basic {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if r.URL.Path != "/oauth/tokens" || r.PostForm.Get("grant_type") != "client_credentials" || id != "zd-client" || secret != "zd-secret" || r.PostForm.Get("scope") != "read" {
			writeJSON(w, 401, map[string]string{"error": "invalid_client", "error_description": "Client authentication failed."})
			return
		}
		mu.Lock()
		current = "zd-access-1"
		mu.Unlock()
		writeJSON(w, 200, map[string]any{"access_token": "zd-access-1", "token_type": "bearer", "scope": "read", "expires_in": 172800})
	}
	tickets := [][2]string{{"1", "361"}, {"2", "362"}, {"3", "361"}, {"4", "363"}, {"5", "364"}}
	v.page = func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/api/v2/tickets.json" || q.Get("page[size]") != "100" {
			writeJSON(w, 400, map[string]any{"error": "InvalidPaginationParameter"})
			return
		}
		from, _ := strconv.Atoi(q.Get("page[after]"))
		var recs []map[string]any
		for _, tk := range tickets[from:min(from+2, len(tickets))] {
			recs = append(recs, map[string]any{"id": tk[0], "requester_id": tk[1], "status": "open", "priority": "high", "created_at": "2026-04-01T10:00:00Z"})
		}
		more := from+2 < len(tickets)
		next := any(nil)
		if more {
			next = fmt.Sprintf("http://%s/api/v2/tickets.json?page%%5Bafter%%5D=%d&page%%5Bsize%%5D=100", r.Host, from+2)
		}
		w.Header().Set("ratelimit-remaining", "150")
		w.Header().Set("ratelimit-reset", "30")
		writeJSON(w, 200, map[string]any{"tickets": recs, "meta": map[string]any{"has_more": more, "after_cursor": strconv.Itoa(from + 2)},
			"links": map[string]any{"next": next, "prev": nil}})
	}
	srv := v.serve(t)
	ds := loadRecipe(t, "zendesk_tickets.yaml", srv)
	secrets := map[string]string{"zendesk-oauth/clientId": "zd-client", "zendesk-oauth/clientSecret": "zd-secret"}
	start := time.Now()
	r := syncRecipe(t, ds, secrets, httpsrc.NewSessions(), datasource.Mode{})
	wantSynced(t, r, signalKeys, "361", "362", "363", "364")
	wantResumed(t, v, 3)
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("resumed after %s: the server's Retry-After: 1 was not honored", waited)
	}
	if n := r.out.Data.SignalLen("361"); n != 2 {
		t.Errorf("requester 361 has %d tickets, want 2", n)
	}
}

// --- Intercom: bearer access token, Intercom-Version header, the contact
// search API (POST, query on updated_at compared by UTC day, pagination in
// the body with starting_after), X-RateLimit-* with a Unix reset time.

// intercomSearch is a contact search as Intercom documents it.
type intercomSearch struct {
	Query struct {
		Field    string          `json:"field"`
		Operator string          `json:"operator"`
		Value    json.RawMessage `json:"value"`
	} `json:"query"`
	Pagination struct {
		PerPage       int     `json:"per_page"`
		StartingAfter *string `json:"starting_after"`
	} `json:"pagination"`
}

func TestRecipeIntercom(t *testing.T) {
	v := &vendor{throttleAt: 2}
	v.accepts = func(auth string) bool { return auth == "Bearer dG9rOmludGVyY29t" }
	v.expired = func(w http.ResponseWriter) {
		writeJSON(w, 401, map[string]any{"type": "error.list", "errors": []map[string]string{{"code": "unauthorized", "message": "Access Token Invalid"}}})
	}
	v.throttle = func(w http.ResponseWriter) {
		w.Header().Set("X-RateLimit-Limit", "10000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Unix(), 10))
		writeJSON(w, 429, map[string]any{"type": "error.list", "errors": []map[string]string{{"code": "rate_limit_exceeded", "message": "Exceeded rate limit of 10000 in 60 seconds"}}})
	}
	type contact struct {
		id      string
		updated int64
	}
	day := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).Unix()
	contacts := []contact{{"u-1", day + 3600}, {"u-2", day + 7200}, {"u-3", day + 10800}, {"u-4", day + 14400}, {"u-5", day + 18000}}
	var searches []intercomSearch
	invalid := func(w http.ResponseWriter, msg string) {
		writeJSON(w, 400, map[string]any{"type": "error.list", "errors": []map[string]string{{"code": "parameter_invalid", "message": msg}}})
	}
	v.page = func(w http.ResponseWriter, r *http.Request) {
		var q intercomSearch
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if r.Method != http.MethodPost || r.URL.Path != "/contacts/search" || r.Header.Get("Intercom-Version") != "2.11" || dec.Decode(&q) != nil {
			invalid(w, "Invalid request")
			return
		}
		var value int64
		if q.Query.Field != "updated_at" || q.Query.Operator != ">" || json.Unmarshal(q.Query.Value, &value) != nil || q.Pagination.PerPage != 150 {
			invalid(w, "query updated_at > <Unix seconds>, 150 a page, expected")
			return
		}
		searches = append(searches, q)
		// Timestamps compare by UTC day: "> t" is "from the day after t's day".
		from := value - value%86400 + 86400
		var sel []contact
		for _, c := range contacts {
			if c.updated >= from {
				sel = append(sel, c)
			}
		}
		at := 0
		if c := q.Pagination.StartingAfter; c != nil {
			at, _ = strconv.Atoi(strings.TrimPrefix(*c, "WzE2"))
		}
		var data []map[string]any
		for i, c := range sel[min(at, len(sel)):min(at+2, len(sel))] {
			m := map[string]any{"type": "contact", "id": fmt.Sprintf("65%d", at+i), "external_id": c.id, "role": "user",
				"email": c.id + "@example.com", "browser_language": "en", "last_seen_at": 1777636800, "updated_at": c.updated}
			if c.id == "u-3" {
				m["last_seen_at"] = nil // never seen
			}
			data = append(data, m)
		}
		pages := map[string]any{"type": "pages", "page": at/2 + 1, "per_page": 2, "total_pages": (len(sel) + 1) / 2}
		if at+2 < len(sel) {
			pages["next"] = map[string]any{"page": at/2 + 2, "starting_after": fmt.Sprintf("WzE2%d", at+2)}
		}
		w.Header().Set("X-RateLimit-Limit", "10000")
		w.Header().Set("X-RateLimit-Remaining", "9990")
		writeJSON(w, 200, map[string]any{"type": "list", "data": data, "total_count": len(sel), "pages": pages})
	}
	srv := v.serve(t)
	ds := loadRecipe(t, "intercom_contacts.yaml", srv)
	secrets := map[string]string{"intercom-api/token": "dG9rOmludGVyY29t"}
	sessions := httpsrc.NewSessions()
	r := syncRecipe(t, ds, secrets, sessions, datasource.Mode{})
	wantSynced(t, r, userKeys, "u-1", "u-2", "u-3", "u-4", "u-5")
	wantResumed(t, v, 3)
	d := r.out.Data
	if seen, ok := attrOf(d.UserDecls, d.UserValues("u-1"), "lastSeenAt").(time.Time); !ok || !seen.Equal(time.Unix(1777636800, 0)) {
		t.Errorf("u-1 lastSeenAt %v", attrOf(d.UserDecls, d.UserValues("u-1"), "lastSeenAt"))
	}
	if seen := attrOf(d.UserDecls, d.UserValues("u-3"), "lastSeenAt"); seen != nil {
		t.Errorf("u-3, never seen: lastSeenAt %v, want absent", seen)
	}
	if string(searches[0].Query.Value) != "0" || searches[0].Pagination.StartingAfter != nil || *searches[1].Pagination.StartingAfter != "WzE22" {
		t.Errorf("full load: value %s, starting_after %v then %v", searches[0].Query.Value, searches[0].Pagination.StartingAfter, searches[1].Pagination.StartingAfter)
	}

	// Incremental, the next day: u-2 changed that morning, after the
	// watermark (u-5, the day before); the others did not.
	contacts[1].updated = day + 86400 + 3600
	v.throttleAt, searches = 0, nil
	inc := syncRecipe(t, ds, secrets, sessions, datasource.IncrementalMode(withStatus(ds, r.out.Watermark), true, false, "", time.Now()))
	o := inc.out
	if o.FetchErr != nil || o.Delta == nil || o.Accepted != 5 {
		t.Fatalf("incremental: err %v, delta %v, %d upserts (want the watermark's whole day again, and u-2)", o.FetchErr, o.Delta != nil, o.Accepted)
	}
	// A watermark on day D is sent as D-1 (24h of overlap): "> D-1" is "from D on".
	if got, want := string(searches[0].Query.Value), strconv.FormatInt(day+18000-86400, 10); got != want {
		t.Errorf("incremental search updated_at > %s, want %s", got, want)
	}
	// Later that day, u-4 changes: a sync from the new watermark (u-2's, in
	// the same UTC day) must read it, though Intercom compares days.
	contacts[3].updated = day + 86400 + 7200
	searches = nil
	again := syncRecipe(t, ds, secrets, sessions, datasource.IncrementalMode(withStatus(ds, o.Watermark), true, false, "", time.Now()))
	if o := again.out; o.FetchErr != nil || o.Accepted != 2 {
		t.Fatalf("second incremental: err %v, %d upserts (want u-2 and u-4)", o.FetchErr, o.Accepted)
	}
}

// --- Stripe: secret key as bearer, has_more with starting_after=<last id>,
// its 429 error object (no Retry-After: backoff with jitter); the full load
// from /v1/subscriptions, then changes from /v1/events (newest first, the
// subscription in data.object, canceled ones deleted).

// stripeSub is a subscription as the fake keeps it.
type stripeSub struct {
	id, customer, interval, status string
	quantity                       int
	created                        int64
}

func (s stripeSub) object() map[string]any {
	amount := 5000
	if s.interval == "year" {
		amount = 120000
	}
	return map[string]any{"id": s.id, "object": "subscription", "customer": s.customer, "status": s.status, "created": s.created,
		"items": map[string]any{"object": "list", "data": []map[string]any{{"id": "si_" + s.id, "quantity": s.quantity,
			"price": map[string]any{"id": "price_pro_" + s.interval, "unit_amount": amount, "currency": "usd",
				"recurring": map[string]any{"interval": s.interval, "interval_count": 1}}}}}}
}

// stripeEvent is one event: the subscription as it became.
type stripeEvent struct {
	id, typ string
	created int64
	sub     stripeSub
}

// stripeList answers a Stripe list: newest first (the slice's order), pages of
// two after starting_after.
func stripeList(w http.ResponseWriter, path string, ids []string, objects []map[string]any, after string) {
	from := 0
	if after != "" {
		from = slices.Index(ids, after) + 1
	}
	end := min(from+2, len(ids))
	data := objects[from:end]
	if data == nil {
		data = []map[string]any{}
	}
	writeJSON(w, 200, map[string]any{"object": "list", "url": path, "has_more": end < len(ids), "data": data})
}

func TestRecipeStripe(t *testing.T) {
	v := &vendor{throttleAt: 2}
	v.accepts = func(auth string) bool { return auth == "Bearer rk_test_51Hx" }
	v.expired = func(w http.ResponseWriter) {
		writeJSON(w, 401, map[string]any{"error": map[string]string{"type": "invalid_request_error", "message": "Invalid API Key provided"}})
	}
	v.throttle = func(w http.ResponseWriter) {
		w.Header().Set("Stripe-Should-Retry", "true")
		writeJSON(w, 429, map[string]any{"error": map[string]string{"type": "invalid_request_error", "code": "rate_limit",
			"message": "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."}})
	}
	const t0 = 1777636800
	subs := []stripeSub{ // newest first, as Stripe lists them
		{"sub_6", "cus_F", "month", "canceled", 1, t0 + 60},
		{"sub_5", "cus_E", "month", "active", 2, t0 + 50},
		{"sub_4", "cus_D", "month", "active", 2, t0 + 40},
		{"sub_3", "cus_C", "month", "active", 2, t0 + 30},
		{"sub_2", "cus_B", "year", "active", 2, t0 + 20},
		{"sub_1", "cus_A", "month", "active", 2, t0 + 10},
	}
	var events []stripeEvent // newest first
	var since []string
	bad := func(w http.ResponseWriter) {
		writeJSON(w, 400, map[string]any{"error": map[string]string{"type": "invalid_request_error", "message": "bad"}})
	}
	v.page = func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Method != http.MethodGet || q.Get("limit") != "100" {
			bad(w)
			return
		}
		switch r.URL.Path {
		case "/v1/subscriptions":
			if q.Get("status") != "all" {
				bad(w)
				return
			}
			var ids []string
			var objs []map[string]any
			for _, s := range subs {
				ids, objs = append(ids, s.id), append(objs, s.object())
			}
			stripeList(w, "/v1/subscriptions", ids, objs, q.Get("starting_after"))
		case "/v1/events":
			gte, err := strconv.ParseInt(q.Get("created[gte]"), 10, 64)
			if q.Get("type") != "customer.subscription.*" || err != nil {
				bad(w)
				return
			}
			since = append(since, q.Get("created[gte]"))
			var ids []string
			var objs []map[string]any
			for _, e := range events {
				if e.created >= gte {
					ids = append(ids, e.id)
					objs = append(objs, map[string]any{"id": e.id, "object": "event", "api_version": "2024-06-20", "created": e.created,
						"type": e.typ, "livemode": false, "pending_webhooks": 0, "request": map[string]any{"id": nil, "idempotency_key": nil},
						"data": map[string]any{"object": e.sub.object()}})
				}
			}
			stripeList(w, "/v1/events", ids, objs, q.Get("starting_after"))
		default:
			bad(w)
		}
	}
	srv := v.serve(t)
	ds := loadRecipe(t, "stripe_subscriptions.yaml", srv)
	ds.Spec.HTTP.Incremental.URL = strings.Replace(ds.Spec.HTTP.Incremental.URL, "https://api.stripe.com", srv.URL, 1)
	secrets := map[string]string{"stripe-api/restrictedKey": "rk_test_51Hx"}
	sessions := httpsrc.NewSessions()
	r := syncRecipe(t, ds, secrets, sessions, datasource.Mode{})
	// The canceled subscription (cus_F) is left out of the full load.
	wantSynced(t, r, accountKeys, "cus_A", "cus_B", "cus_C", "cus_D", "cus_E")
	wantResumed(t, v, 3)
	d := r.out.Data
	// 2 × $50 a month; 2 × $1200 a year is $200 a month.
	for cus, want := range map[string]float64{"cus_A": 100, "cus_B": 200} {
		if got := attrOf(d.AccountDecls, d.AccountValues(cus), "mrr"); got != want {
			t.Errorf("%s: mrr %v, want %v", cus, got, want)
		}
	}
	if got := attrOf(d.AccountDecls, d.AccountValues("cus_B"), "plan"); got != "price_pro_year" {
		t.Errorf("plan %v", got)
	}
	if !r.out.Watermark.Equal(time.Unix(t0+60, 0)) {
		t.Errorf("watermark %s, want the newest subscription's creation", r.out.Watermark)
	}

	// Since: cus_B moved to monthly, then to 3 seats; cus_C canceled; cus_G
	// subscribed (created and activated in one second); an old event the
	// watermark excludes.
	b := subs[4]
	b.interval = "month"
	b3 := b
	b3.quantity = 3
	c := subs[3]
	c.status = "canceled"
	g := stripeSub{"sub_7", "cus_G", "month", "incomplete", 1, t0 + 200}
	gActive := g
	gActive.status = "active"
	events = []stripeEvent{
		{"evt_6", "customer.subscription.updated", t0 + 300, b3},
		{"evt_5", "customer.subscription.updated", t0 + 200, gActive},
		{"evt_4", "customer.subscription.created", t0 + 200, g},
		{"evt_3", "customer.subscription.deleted", t0 + 150, c},
		{"evt_2", "customer.subscription.updated", t0 + 100, b},
		{"evt_1", "customer.subscription.updated", t0 - 3600, subs[5]},
	}
	v.throttleAt = 0
	inc := syncRecipe(t, ds, secrets, sessions, datasource.IncrementalMode(withStatus(ds, r.out.Watermark), true, false, "", time.Now()))
	o := inc.out
	if o.FetchErr != nil || o.Delta == nil || o.Rejected != 0 {
		t.Fatalf("incremental: err %v, delta %v, rejected %v", o.FetchErr, o.Delta != nil, o.Rejections)
	}
	if o.Accepted != 2 || o.Deletes != 1 || o.Superseded != 2 {
		t.Errorf("incremental: %d upserts, %d deletes, %d superseded; want cus_B and cus_G, cus_C, and the two older changes", o.Accepted, o.Deletes, o.Superseded)
	}
	if want := strconv.Itoa(t0 + 60 - 60); len(since) != 3 || slices.ContainsFunc(since, func(s string) bool { return s != want }) {
		t.Errorf("events asked from %v: want 3 pages from the watermark minus the 1m overlap, %s", since, want)
	}
	if !o.Watermark.Equal(time.Unix(t0+300, 0)) {
		t.Errorf("incremental watermark %s, want the newest event's", o.Watermark)
	}
	ns := profile.NewStore().Namespace("stripe")
	ns.Apply(r.out.Data)
	ns.ApplyDelta(o.Delta)
	after := ns.Source(ds.Name)
	if got := keys(after.Accounts); !reflect.DeepEqual(got, []string{"cus_A", "cus_B", "cus_D", "cus_E", "cus_G"}) {
		t.Errorf("accounts after the delta %v", got)
	}
	for cus, want := range map[string]any{"cus_B": 150.0, "cus_G": 50.0} { // 3 × $50; 1 × $50
		if got := attrOf(after.AccountDecls, after.AccountValues(cus), "mrr"); got != want {
			t.Errorf("%s: mrr %v, want %v (the newest change)", cus, got, want)
		}
	}
	if got := attrOf(after.AccountDecls, after.AccountValues("cus_G"), "subscriptionStatus"); got != "active" {
		t.Errorf("cus_G status %v, want active (the newer of two events in one second)", got)
	}
}

// attrOf is the named attribute of a stored row, as a Go value (nil: absent).
func attrOf(decls []attr.Decl, values []ref.Val, name string) any {
	for i, d := range decls {
		if d.Name != name || i >= len(values) || values[i] == nil {
			continue
		}
		v, _ := attr.FromCEL(values[i])
		return v
	}
	return nil
}

// --- Zendesk users: API token as basic auth, the cursor-based incremental
// export (start_time in Unix seconds, after_url until end_of_stream), a 429
// with Retry-After, and an incremental sync from the watermark.

func TestRecipeZendeskUsers(t *testing.T) {
	type zuser struct {
		id      string
		updated time.Time
	}
	base := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	users := []zuser{{"ext-1", base}, {"ext-2", base.Add(time.Hour)}, {"ext-3", base.Add(2 * time.Hour)}, {"ext-4", base.Add(3 * time.Hour)}, {"ext-5", base.Add(4 * time.Hour)}}
	var starts []string
	v := &vendor{throttleAt: 2}
	v.accepts = func(auth string) bool {
		r := &http.Request{Header: http.Header{"Authorization": {auth}}}
		u, p, ok := r.BasicAuth()
		return ok && u == "agent@example.com/token" && p == "zd-api-token"
	}
	v.expired = func(w http.ResponseWriter) {
		writeJSON(w, 401, map[string]string{"error": "Couldn't authenticate you"})
	}
	v.throttle = func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "0")
		writeJSON(w, 429, map[string]any{"error": "APIRateLimitExceeded", "description": "Number of allowed incremental export API requests per minute exceeded"})
	}
	v.page = func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var from int
		var since int64
		if c := q.Get("cursor"); c != "" {
			parts := strings.SplitN(c, ".", 2)
			from, _ = strconv.Atoi(parts[0])
			since, _ = strconv.ParseInt(parts[1], 10, 64)
		} else {
			starts = append(starts, q.Get("start_time"))
			var err error
			if since, err = strconv.ParseInt(q.Get("start_time"), 10, 64); err != nil {
				writeJSON(w, 400, map[string]any{"error": "InvalidValue", "description": "start_time is required"})
				return
			}
		}
		var sel []zuser
		for _, u := range users {
			if u.updated.Unix() >= since {
				sel = append(sel, u)
			}
		}
		var recs []map[string]any
		for i, u := range sel[min(from, len(sel)):min(from+2, len(sel))] {
			recs = append(recs, map[string]any{"id": 360000 + from + i, "external_id": u.id, "role": "end-user", "suspended": false,
				"active": true, "updated_at": u.updated.Format(time.RFC3339)})
		}
		cursor := fmt.Sprintf("%d.%d", from+2, since)
		writeJSON(w, 200, map[string]any{"users": recs, "after_cursor": cursor, "before_cursor": nil,
			"after_url":     fmt.Sprintf("http://%s/api/v2/incremental/users/cursor.json?cursor=%s", r.Host, cursor),
			"end_of_stream": from+2 >= len(sel)})
	}
	srv := v.serve(t)
	ds := loadRecipe(t, "zendesk_users.yaml", srv)
	if rpm := ds.Spec.HTTP.RateLimit.RequestsPerMinute; rpm != 10 {
		t.Errorf("the recipe's budget is %d a minute, not the export's 10", rpm)
	}
	ds.Spec.HTTP.RateLimit.RequestsPerMinute = 600 // 6 s a request would make a slow test; TestBudgetHolds tests budgets
	secrets := map[string]string{"zendesk-api/username": "agent@example.com/token", "zendesk-api/password": "zd-api-token"}
	sessions := httpsrc.NewSessions()
	full := syncRecipe(t, ds, secrets, sessions, datasource.Mode{})
	wantSynced(t, full, userKeys, "ext-1", "ext-2", "ext-3", "ext-4", "ext-5")
	wantResumed(t, v, 3)
	if !full.out.Watermark.Equal(base.Add(4 * time.Hour)) {
		t.Errorf("watermark %s", full.out.Watermark)
	}

	users[1].updated = base.Add(5 * time.Hour)
	v.throttleAt = 0
	inc := syncRecipe(t, ds, secrets, sessions, datasource.IncrementalMode(withStatus(ds, full.out.Watermark), true, false, "", time.Now()))
	if o := inc.out; o.FetchErr != nil || o.Delta == nil || o.Accepted != 2 {
		t.Fatalf("incremental: %v, delta %v, %d upserts (want ext-5 again, within the overlap, and ext-2)", o.FetchErr, o.Delta != nil, o.Accepted)
	}
	if want := strconv.FormatInt(base.Add(4*time.Hour-time.Minute).Unix(), 10); len(starts) != 2 || starts[0] != "0" || starts[1] != want {
		t.Errorf("start_time sent %q, want 0 then %s", starts, want)
	}
}

// jwtClaims are the claims Salesforce's JWT bearer flow checks.
type jwtClaims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	Exp int64  `json:"exp"`
	Iat int64  `json:"iat"`
}

// verifyJWT checks an RS256 assertion's signature, as Salesforce's token
// endpoint does, and returns its claims.
func verifyJWT(assertion string, pub *rsa.PublicKey) (jwtClaims, error) {
	var c jwtClaims
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return c, errors.New("not a JWS compact serialization")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return c, err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return c, err
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(payload, &c)
}
