// Command gendata writes the demo dataset: accounts, users and two signals
// (feature requests and support tickets) with realistic distributions, dates
// relative to a given "now", and the same bytes for the same seed and now. It also
// writes configmaps.yaml, the four ConfigMaps the DataSources in config/demo read.
// Files use only the standard library; -postgres uses pgx.
//
// Usage:
//
//	go run ./hack/gendata -out DIR [-users 3000] [-accounts 300] [-seed 42] [-now 2026-11-23T00:00:00Z]
//
// Files written into DIR:
//
//	accounts.csv          account_id,name,tier,arr,renewal_date,lifecycle_stage,csm_owner,plan
//	users.ndjson          {"id","account_id","email","role","nps"?,"last_login","logins_30d","features","beta","onboarded"}
//	feature-requests.csv  user_id,feature,requested_at
//	tickets.ndjson        {"user_id","ticket_id","status","priority","category","created_at"}
//	configmaps.yaml       ConfigMaps demo-accounts, demo-users, demo-feature-requests, demo-tickets
//
// Each data file must fit a ConfigMap (1 MiB); the generator refuses to write a
// file over 900 KiB and exits non-zero. See docs/demo-data.md.
//
// With -postgres DSN instead of -out, the same accounts, users and feature
// requests (plus a few more user columns and updated_at everywhere, as a product
// database has) are loaded into PostgreSQL with COPY, without any size limit:
// the scale benchmark's data (make bench-scale, docs/benchmarks.md).
//
//	go run ./hack/gendata -postgres postgres://... [-users 1000000] [-accounts 100000]
package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxFileBytes bounds each data file: they go into ConfigMaps, whose data is
// limited to 1 MiB.
const MaxFileBytes = 900 * 1024

// Defaults.
const (
	DefaultUsers    = 3000
	DefaultAccounts = 300
	DefaultSeed     = 42
)

// Data files, each the single key of its ConfigMap, in the order they are written.
var dataFiles = []struct{ file, configMap string }{
	{"accounts.csv", "demo-accounts"},
	{"users.ndjson", "demo-users"},
	{"feature-requests.csv", "demo-feature-requests"},
	{"tickets.ndjson", "demo-tickets"},
}

// ConfigMapsFile is the manifest of the four ConfigMaps.
const ConfigMapsFile = "configmaps.yaml"

const day = 24 * time.Hour

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(1)
	}
}

// Config is what the dataset depends on; the same Config gives the same bytes.
type Config struct {
	Users, Accounts int
	Seed            uint64
	Now             time.Time
	// RequestRate scales how many users ask for features and how many each
	// asks for; 0 means 1, the demo's.
	RequestRate float64
}

func (g *generator) requestRate() float64 {
	if g.cfg.RequestRate <= 0 {
		return 1
	}
	return g.cfg.RequestRate
}

func run(args []string, log io.Writer) error {
	fs := flag.NewFlagSet("gendata", flag.ContinueOnError)
	fs.SetOutput(log)
	out := fs.String("out", "", "directory to write the files into (required unless -postgres; created if missing)")
	pgDSN := fs.String("postgres", "", "load accounts, users and feature requests into this PostgreSQL database instead "+
		"(tables accounts, users, feature_requests are dropped and re-created; no size limit)")
	users := fs.Int("users", DefaultUsers, "number of users")
	accounts := fs.Int("accounts", DefaultAccounts, "number of accounts (at most -users: every account has a user)")
	seed := fs.Uint64("seed", DefaultSeed, "random seed")
	requestRate := fs.Float64("request-rate", 1, "scale how many users request features and how many each "+
		"(1: the demo's, about 0.3 requests per user; 2.5: about one)")
	nowFlag := fs.String("now", "", "the time the data is relative to, RFC 3339 or YYYY-MM-DD (default: today 00:00 UTC)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*out == "") == (*pgDSN == "") || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("exactly one of -out DIR and -postgres DSN is required, and no arguments are accepted")
	}
	now := time.Now().UTC().Truncate(day)
	if *nowFlag != "" {
		var err error
		if now, err = parseNow(*nowFlag); err != nil {
			return err
		}
	}
	if *requestRate <= 0 {
		return fmt.Errorf("-request-rate %v: want a positive factor", *requestRate)
	}
	cfg := Config{Users: *users, Accounts: *accounts, Seed: *seed, Now: now, RequestRate: *requestRate}
	if *pgDSN != "" {
		return loadPostgres(context.Background(), *pgDSN, cfg, log)
	}
	files, err := Generate(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(*out, f.Name), f.Data, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "gendata: %d accounts, %d users (seed %d, now %s) written to %s\n",
		cfg.Accounts, cfg.Users, cfg.Seed, cfg.Now.Format(time.RFC3339), *out)
	return nil
}

func parseNow(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("-now %q: want RFC 3339 (2026-11-23T00:00:00Z) or a date (2026-11-23)", s)
}

// File is one generated file.
type File struct {
	Name string
	Data []byte
}

// Generate builds the dataset: the four data files in dataFiles order, then
// configmaps.yaml. It fails if a data file exceeds MaxFileBytes.
func Generate(cfg Config) ([]File, error) {
	if cfg.Accounts < 1 || cfg.Users < cfg.Accounts {
		return nil, fmt.Errorf("need 1 <= -accounts <= -users (got %d accounts, %d users)", cfg.Accounts, cfg.Users)
	}
	g := newGenerator(cfg)
	g.tickets = g.genTickets(newRNG(cfg.Seed, 4))

	files := []File{
		{dataFiles[0].file, g.accountsCSV()},
		{dataFiles[1].file, g.usersNDJSON()},
		{dataFiles[2].file, g.requestsCSV()},
		{dataFiles[3].file, g.ticketsNDJSON()},
	}
	for _, f := range files {
		if len(f.Data) > MaxFileBytes {
			return nil, fmt.Errorf("%s would be %d bytes, over the %d-byte budget of a ConfigMap key (1 MiB limit); lower -users or -accounts",
				f.Name, len(f.Data), MaxFileBytes)
		}
	}
	files = append(files, File{ConfigMapsFile, configMapsYAML(cfg, files)})
	return files, nil
}

// newGenerator builds the model all outputs share: accounts, users and feature
// requests (tickets only go to files, so they are made by Generate alone).
func newGenerator(cfg Config) *generator {
	g := &generator{cfg: cfg, now: cfg.Now.UTC()}
	g.accounts = g.genAccounts(newRNG(cfg.Seed, 1))
	g.users = g.genUsers(newRNG(cfg.Seed, 2))
	g.requests = g.genRequests(newRNG(cfg.Seed, 3))
	return g
}

// ---- random numbers ----

// rng is splitmix64: tiny, and its sequence is ours, so the data does not change
// when the standard library's generators or their helpers do.
type rng struct{ s uint64 }

func newRNG(seed, stream uint64) *rng {
	r := &rng{s: seed ^ (stream * 0x9e3779b97f4a7c15)}
	r.next()
	return r
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float is uniform in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// intn is uniform in [0, n).
func (r *rng) intn(n int) int { return int(r.float() * float64(n)) }

// between is uniform in [lo, hi].
func (r *rng) between(lo, hi int) int { return lo + r.intn(hi-lo+1) }

func (r *rng) chance(p float64) bool { return r.float() < p }

// weighted picks an index with probability proportional to its weight.
func (r *rng) weighted(w []float64) int {
	var sum float64
	for _, x := range w {
		sum += x
	}
	x := r.float() * sum
	for i, wi := range w {
		if x < wi {
			return i
		}
		x -= wi
	}
	return len(w) - 1
}

// geometric counts successes before the first failure, with the given mean.
func (r *rng) geometric(mean float64, limit int) int {
	p := mean / (1 + mean)
	n := 0
	for n < limit && r.chance(p) {
		n++
	}
	return n
}

func shuffle[T any](r *rng, s []T) {
	for i := len(s) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		s[i], s[j] = s[j], s[i]
	}
}

// pickDistinct picks n distinct items, weighted, without replacement.
func (r *rng) pickDistinct(items []string, weights []float64, n int) []string {
	w := slices.Clone(weights)
	var out []string
	for len(out) < n {
		var sum float64
		for _, x := range w {
			sum += x
		}
		if sum == 0 {
			break
		}
		i := r.weighted(w)
		out = append(out, items[i])
		w[i] = 0
	}
	return out
}

// ---- the model ----

// Vocabularies. Features are what users use; requests are enhancements users ask
// for: improvements to those features and a few the product does not have yet.
var (
	tiers    = []string{"enterprise", "mid-market", "smb"}
	stages   = []string{"onboarding", "adoption", "engagement", "retention", "expansion", "advocacy"}
	features = []string{"reports", "dashboards", "audit_log", "sso", "api", "alerts", "exports", "integrations", "workflows", "sandbox"}
	// How often each feature is used, in features order.
	featureWeights = []float64{10, 9, 1.5, 3, 3, 5, 6, 4, 3, 1}

	requestNames = []string{"audit_log", "sso", "custom_roles", "data_residency", "api", "exports", "integrations",
		"dashboards", "mobile_app", "alerts", "workflows", "bulk_edit", "reports", "dark_mode", "sandbox"}
	// What most users ask for, in requestNames order.
	generalRequestWeights = []float64{1, 1, 1, 0.5, 2, 4, 4, 5, 4, 3, 3, 3, 2, 2, 1}
	// What enterprise stakeholders (decision makers, admins) ask for: security
	// and compliance.
	enterpriseRequestWeights = []float64{3, 3, 3, 2, 2, 2, 2, 1.5, 1, 1, 1, 1, 1, 0.3, 0.5}

	ticketCategories      = []string{"bug", "how_to", "access", "billing", "performance", "integration"}
	ticketCategoryWeights = []float64{30, 25, 15, 10, 12, 8}
	priorities            = []string{"low", "normal", "high", "urgent"}

	companyWords = []string{"Atlas", "Beacon", "Blue Harbor", "Brightline", "Cedar", "Cobalt", "Copperleaf", "Delta",
		"Ember", "Evergreen", "Falcon", "Fjord", "Granite", "Helix", "Indigo", "Ironwood", "Jasper", "Juniper",
		"Kestrel", "Keystone", "Lighthouse", "Lumen", "Maple", "Meridian", "Mosaic", "Nimbus", "Northwind", "Nova",
		"Oakridge", "Orchid", "Pinnacle", "Prairie", "Quarry", "Quartz", "Redwood", "Riverbend", "Sable",
		"Silverline", "Summit", "Terra", "Tidewater", "Upland", "Vertex", "Willow", "Zenith"}
	companyKinds = []string{"Analytics", "Bank", "Capital", "Energy", "Foods", "Health", "Insurance", "Labs",
		"Learning", "Logistics", "Manufacturing", "Media", "Pharma", "Retail", "Robotics", "Studios", "Systems", "Travel"}
	firstNames = []string{"Aisha", "Alex", "Ana", "Ben", "Carla", "Chen", "Dana", "David", "Elena", "Emeka", "Fatima",
		"Felix", "Grace", "Hiro", "Ines", "Ivan", "Jamal", "Julia", "Kai", "Laura", "Lee", "Lucas", "Maria", "Mei",
		"Nadia", "Noah", "Olga", "Omar", "Priya", "Rafael", "Rosa", "Sam", "Sara", "Tariq", "Tom", "Uma", "Victor",
		"Wei", "Yara", "Zoe"}
	lastNames = []string{"Adams", "Alvarez", "Baker", "Brown", "Chen", "Costa", "Das", "Dubois", "Evans", "Fischer",
		"Garcia", "Gupta", "Hansen", "Ito", "Jensen", "Kim", "Kowalski", "Lopez", "Martin", "Meyer", "Moreau",
		"Nguyen", "Novak", "Okafor", "Olsen", "Patel", "Rossi", "Sato", "Schmidt", "Silva", "Singh", "Smith",
		"Tanaka", "Taylor", "Usman", "Walker", "Wang", "Weber", "Yilmaz", "Zhang"}
	// Enterprise and mid-market accounts have a named CSM; smaller ones are
	// served by the pooled (tech-touch) team.
	enterpriseCSMs = []string{"dana", "marco", "priya", "kenji"}
	midMarketCSMs  = []string{"lee", "sofia", "amara", "tom", "ines", "omar"}
)

// Roles.
const (
	roleDecisionMaker = "decision_maker"
	roleChampion      = "champion"
	roleAdmin         = "admin"
	roleEndUser       = "end_user"
)

// Activity levels.
const (
	dormant = iota // no login for more than 30 days
	low            // 1-4 logins in 30 days
	medium         // 5-19
	high           // 20 or more
)

type account struct {
	id, name, tier, plan, stage, csm string
	arr                              int64
	renewal                          time.Time
	// atRisk is hidden: unhealthy accounts have more detractors, less activity
	// and more open tickets.
	atRisk bool
	users  []*user
}

type user struct {
	id, email, role string
	name            string
	acct            *account
	nps             int
	hasNPS          bool
	lastLogin       time.Time
	logins30d       int
	level           int
	features        []string
	beta, onboarded bool
}

type request struct {
	user    *user
	feature string
	at      time.Time
}

type ticket struct {
	user                           *user
	id, status, priority, category string
	created                        time.Time
}

type generator struct {
	cfg      Config
	now      time.Time
	accounts []*account
	users    []*user
	requests []request
	tickets  []ticket
}

func round(f float64) int { return int(math.Round(f)) }

// ago is now minus whole days and a random part of a day, so it is strictly in the
// past and never lands on midnight.
func (g *generator) ago(r *rng, days int) time.Time {
	return g.now.Add(-time.Duration(days)*day - time.Duration(r.between(60, 86399))*time.Second)
}

func slug(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "-")) }

func (g *generator) genAccounts(r *rng) []*account {
	n := g.cfg.Accounts
	// Exact shares, shuffled: 10% enterprise, 30% mid-market, 60% smb.
	nEnt := max(1, round(0.10*float64(n)))
	nMid := min(n-nEnt, round(0.30*float64(n)))
	tierOf := make([]string, n)
	for i := range tierOf {
		switch {
		case i < nEnt:
			tierOf[i] = tiers[0]
		case i < nEnt+nMid:
			tierOf[i] = tiers[1]
		default:
			tierOf[i] = tiers[2]
		}
	}
	shuffle(r, tierOf)

	// Unique company names.
	var names []string
	for _, w := range companyWords {
		for _, k := range companyKinds {
			names = append(names, w+" "+k)
		}
	}
	shuffle(r, names)

	accounts := make([]*account, n)
	for i := range accounts {
		name := names[i%len(names)]
		if i >= len(names) {
			name += " " + strconv.Itoa(i/len(names)+1)
		}
		accounts[i] = &account{id: slug(name), name: name, tier: tierOf[i], plan: "paid"}
	}

	// About 15% of accounts are on a trial: three quarters of them smb, the rest
	// mid-market; enterprise deals are never self-serve trials.
	nTrial := round(0.15 * float64(n))
	nTrialMid := nTrial / 4
	for _, a := range accounts {
		switch {
		case a.tier == "mid-market" && nTrialMid > 0:
			a.plan, nTrialMid, nTrial = "trial", nTrialMid-1, nTrial-1
		case a.tier == "smb" && nTrial > nTrialMid && nTrial > 0:
			a.plan, nTrial = "trial", nTrial-1
		}
	}

	// Exactly 40% of enterprise accounts renew within 90 days (at least a week
	// out, so none renews during a demo), and a little over half of those are
	// unhealthy: the renewals that keep CSMs up at night. Enterprise
	// accounts come in random order, so taking the first ones is a random choice.
	entSoon := max(1, round(0.4*float64(nEnt)))
	entSoonAtRisk := max(1, round(0.55*float64(entSoon)))
	entSeen := 0
	for _, a := range accounts {
		if a.tier == "enterprise" {
			entSeen++
		}
		soonEnterprise := a.tier == "enterprise" && entSeen <= entSoon
		switch {
		case a.plan == "trial":
			a.renewal = g.now.Add(time.Duration(r.between(1, 30)) * day) // trial end
		case soonEnterprise:
			a.renewal = g.now.Add(time.Duration(r.between(7, 89)) * day)
		case a.tier == "enterprise":
			a.renewal = g.now.Add(time.Duration(r.between(91, 365)) * day)
		default:
			a.renewal = g.now.Add(time.Duration(r.between(1, 365)) * day)
		}
		renewsSoon := a.renewal.Sub(g.now) <= 90*day
		switch {
		case a.plan == "trial":
			a.atRisk = r.chance(0.3)
		case soonEnterprise:
			a.atRisk = entSeen <= entSoonAtRisk
		default:
			a.atRisk = r.chance(0.18)
		}

		// ARR: log-uniform within the tier's band, rounded like a price list.
		logUniform := func(lo, hi float64, unit int64) int64 {
			v := lo * math.Pow(hi/lo, r.float())
			return int64(math.Round(v/float64(unit))) * unit
		}
		switch {
		case a.plan == "trial":
			a.arr = 0
		case a.tier == "enterprise":
			a.arr = logUniform(100_000, 1_000_000, 1000)
		case a.tier == "mid-market":
			a.arr = logUniform(25_000, 99_000, 500)
		default:
			a.arr = logUniform(2_400, 24_000, 100)
		}

		switch {
		case a.plan == "trial":
			a.stage = "onboarding"
		case renewsSoon && r.chance(0.5):
			a.stage = "retention"
		case a.atRisk:
			a.stage = stages[r.weighted([]float64{10, 30, 30, 30, 0, 0})]
		default:
			a.stage = stages[r.weighted([]float64{10, 20, 25, 20, 15, 10})]
		}

		switch a.tier {
		case "enterprise":
			a.csm = enterpriseCSMs[r.intn(len(enterpriseCSMs))]
		case "mid-market":
			a.csm = midMarketCSMs[r.intn(len(midMarketCSMs))]
		default:
			a.csm = "pooled"
		}
	}
	return accounts
}

func (g *generator) genUsers(r *rng) []*user {
	// Every account has a user; the rest are spread by weight: enterprise
	// accounts are large, trials small.
	sizes := make([]int, len(g.accounts))
	weights := make([]float64, len(g.accounts))
	for i, a := range g.accounts {
		sizes[i] = 1
		base := map[string]float64{"enterprise": 28, "mid-market": 10, "smb": 4}[a.tier]
		if a.plan == "trial" {
			base = 3
		}
		weights[i] = base * (0.5 + r.float())
	}
	// A binary search over the running sums picks the same account as
	// r.weighted (one draw, the first index whose running sum exceeds it) in
	// O(log accounts): a linear scan per user is 10^11 steps at 1 M users.
	cum := make([]float64, len(weights))
	var sum float64
	for i, w := range weights {
		sum += w
		cum[i] = sum
	}
	for range g.cfg.Users - len(g.accounts) {
		x := r.float() * sum
		i, _ := slices.BinarySearchFunc(cum, x, func(c, x float64) int {
			if c <= x {
				return -1
			}
			return 1
		})
		sizes[min(i, len(sizes)-1)]++
	}

	var all []*user
	for i, a := range g.accounts {
		k := sizes[i]
		// The buying committee grows with the account.
		var dms, admins, champions int
		switch a.tier {
		case "enterprise":
			dms, admins, champions = 2+k/12, 1+k/30, 2+k/20
		case "mid-market":
			dms, admins, champions = 1+k/25, 1, 1+k/15
		default:
			dms, admins, champions = 1, 1, min(1, k/3)
		}
		roles := make([]string, k)
		for j := range roles {
			switch {
			case j < dms:
				roles[j] = roleDecisionMaker
			case j < dms+admins:
				roles[j] = roleAdmin
			case j < dms+admins+champions:
				roles[j] = roleChampion
			default:
				roles[j] = roleEndUser
			}
		}
		shuffle(r, roles)
		emails := map[string]bool{}
		for _, role := range roles {
			u := &user{acct: a, role: role}
			first, last := firstNames[r.intn(len(firstNames))], lastNames[r.intn(len(lastNames))]
			u.name = first + " " + last
			base := strings.ToLower(first + "." + last)
			local := base
			for n := 2; emails[local]; n++ {
				local = base + strconv.Itoa(n)
			}
			emails[local] = true
			u.email = local + "@" + a.id + ".example"
			g.fillUser(r, u)
			a.users = append(a.users, u)
			all = append(all, u)
		}
	}
	// Ids in an order unrelated to accounts, as a product database would have.
	shuffle(r, all)
	for i, u := range all {
		u.id = fmt.Sprintf("u-%05d", i+1)
	}
	return all
}

func (g *generator) fillUser(r *rng, u *user) {
	a := u.acct
	trial := a.plan == "trial"

	// Onboarding: mostly done, except at accounts that are just starting.
	switch {
	case trial || a.stage == "onboarding":
		u.onboarded = r.chance(0.6)
	case a.stage == "adoption":
		u.onboarded = r.chance(0.92)
	default:
		u.onboarded = r.chance(0.985)
	}

	// Activity level.
	w := []float64{0.14, 0.30, 0.38, 0.18}
	switch {
	case !u.onboarded:
		w = []float64{0.25, 0.40, 0.27, 0.08}
	case trial:
		w = []float64{0.12, 0.40, 0.30, 0.18}
	case a.atRisk:
		w = []float64{0.26, 0.38, 0.27, 0.09}
	}
	switch u.role {
	case roleChampion:
		w[high] += 0.2
		w[dormant] /= 2
	case roleDecisionMaker:
		w[high] /= 2
		w[low] += 0.1
	case roleAdmin:
		w[medium] += 0.1
	}
	u.level = r.weighted(w)
	switch u.level {
	case dormant:
		u.logins30d = 0
		u.lastLogin = g.ago(r, r.between(30, 119))
	case low:
		u.logins30d = 1 + r.geometric(1, 3)
		u.lastLogin = g.ago(r, r.between(0, 20))
	case medium:
		u.logins30d = r.between(5, 19)
		u.lastLogin = g.ago(r, r.between(0, 5))
	default:
		u.logins30d = 20 + r.geometric(10, 60)
		u.lastLogin = g.ago(r, r.weighted([]float64{3, 1}))
	}

	// Features used: more with activity; enterprise stakeholders use the
	// security features.
	var lo, hi int
	switch u.level {
	case dormant:
		lo, hi = 0, 2
	case low:
		lo, hi = 1, 3
	case medium:
		lo, hi = 2, 5
	default:
		lo, hi = 3, 7
	}
	if !u.onboarded {
		lo, hi = min(lo, 1), min(hi, 2)
	}
	fw := slices.Clone(featureWeights)
	if a.tier == "enterprise" {
		fw[2] *= 3   // audit_log
		fw[3] *= 2.5 // sso
	}
	if u.role == roleAdmin {
		fw[2] *= 2
		fw[3] *= 2
	}
	picked := r.pickDistinct(features, fw, r.between(lo, hi))
	u.features = make([]string, 0, len(picked))
	for _, f := range features { // in the list's order
		if slices.Contains(picked, f) {
			u.features = append(u.features, f)
		}
	}

	// NPS: about 40% never answer; detractors concentrate at unhealthy accounts.
	answer := map[string]float64{roleDecisionMaker: 0.78, roleChampion: 0.8, roleAdmin: 0.65, roleEndUser: 0.64}[u.role]
	if trial {
		answer /= 2
	}
	if u.level == dormant {
		answer *= 0.6
	}
	if r.chance(answer) {
		u.hasNPS = true
		detractor := 0.1
		switch {
		case a.atRisk && u.role == roleDecisionMaker:
			detractor = 0.6 // they sign the renewal and feel every problem
		case a.atRisk:
			detractor = 0.5
		}
		if u.level == dormant {
			detractor += 0.1
		}
		switch {
		case r.chance(detractor):
			u.nps = r.weighted([]float64{1, 1, 2, 3, 4, 5, 6}) // 0..6
		case r.chance(0.4):
			u.nps = 7 + r.intn(2)
		default:
			u.nps = 9 + r.weighted([]float64{55, 45})
		}
	}

	beta := 0.03
	if u.role == roleChampion {
		beta = 0.2
	}
	if u.level == high {
		beta += 0.08
	}
	u.beta = !trial && r.chance(beta)
}

func (g *generator) genRequests(r *rng) []request {
	var out []request
	for _, u := range g.users { // by user id
		a := u.acct
		detractor := u.hasNPS && u.nps <= 6
		stakeholder := a.tier == "enterprise" && (u.role == roleDecisionMaker || u.role == roleAdmin)
		p := 0.15
		if detractor {
			p += 0.25
		}
		if stakeholder {
			p += 0.35
		}
		if u.role == roleChampion {
			p += 0.15
		}
		if u.level == dormant {
			p *= 0.4
		}
		// Unhappy enterprise decision makers tell their CSM what blocks the renewal.
		blocker := u.role == roleDecisionMaker && a.tier == "enterprise" && detractor
		if blocker {
			p = 0.92
		}
		if !r.chance(min(p*g.requestRate(), 0.95)) {
			continue
		}
		weights := generalRequestWeights
		if stakeholder {
			weights = enterpriseRequestWeights
		}
		n := 1 + r.geometric(0.6*g.requestRate(), 3)
		var picked []string
		// Unhappy enterprise decision makers have one blocker in common: the
		// compliance audit needs a complete audit log.
		if blocker && r.chance(0.8) {
			picked = append(picked, "audit_log")
			n--
		}
		w := slices.Clone(weights)
		for i, name := range requestNames {
			if slices.Contains(picked, name) {
				w[i] = 0
			}
		}
		picked = append(picked, r.pickDistinct(requestNames, w, n)...)
		for _, f := range picked {
			out = append(out, request{user: u, feature: f, at: g.ago(r, r.between(0, 179))})
		}
	}
	slices.SortStableFunc(out, func(x, y request) int { return x.at.Compare(y.at) })
	return out
}

func (g *generator) genTickets(r *rng) []ticket {
	var out []ticket
	for _, u := range g.users {
		a := u.acct
		mean := 0.45
		if a.atRisk {
			mean *= 2.5
		}
		switch u.role {
		case roleAdmin:
			mean *= 1.8
		case roleDecisionMaker:
			mean *= 0.7
		}
		switch u.level {
		case dormant:
			mean *= 0.3
		case high:
			mean *= 1.3
		}
		if a.plan == "trial" {
			mean *= 0.5
		}
		for range r.geometric(mean, 9) {
			ages := []float64{7, 23, 120} // within a week, a month, five months
			if a.atRisk {
				ages = []float64{20, 40, 90} // a recent backlog
			}
			age := r.weighted(ages)
			var days int
			var status []float64 // open, pending, closed
			switch age {
			case 0:
				days, status = r.between(0, 6), []float64{0.55, 0.25, 0.20}
			case 1:
				days, status = r.between(7, 29), []float64{0.25, 0.20, 0.55}
			default:
				days, status = r.between(30, 149), []float64{0.05, 0.03, 0.92}
			}
			if a.atRisk { // a backlog nobody gets to
				status[0] += 0.15
				status[2] -= 0.15
			}
			prio := []float64{30, 45, 20, 5}
			if a.tier == "enterprise" {
				prio = []float64{15, 45, 30, 10}
			}
			out = append(out, ticket{
				user:     u,
				status:   []string{"open", "pending", "closed"}[r.weighted(status)],
				priority: priorities[r.weighted(prio)],
				category: ticketCategories[r.weighted(ticketCategoryWeights)],
				created:  g.ago(r, days),
			})
		}
	}
	// Ticket numbers grow with time, as in a help desk.
	slices.SortStableFunc(out, func(x, y ticket) int { return x.created.Compare(y.created) })
	for i := range out {
		out[i].id = fmt.Sprintf("T-%06d", 100001+i)
	}
	return out
}

// ---- output ----

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func writeCSV(rows [][]string) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.WriteAll(rows) // a bytes.Buffer does not fail
	return b.Bytes()
}

func (g *generator) accountsCSV() []byte {
	rows := [][]string{{"account_id", "name", "tier", "arr", "renewal_date", "lifecycle_stage", "csm_owner", "plan"}}
	sorted := slices.Clone(g.accounts)
	slices.SortFunc(sorted, func(x, y *account) int { return strings.Compare(x.id, y.id) })
	for _, a := range sorted {
		rows = append(rows, []string{a.id, a.name, a.tier, strconv.FormatInt(a.arr, 10), ts(a.renewal), a.stage, a.csm, a.plan})
	}
	return writeCSV(rows)
}

func (g *generator) usersNDJSON() []byte {
	type rec struct {
		ID        string   `json:"id"`
		AccountID string   `json:"account_id"`
		Email     string   `json:"email"`
		Role      string   `json:"role"`
		NPS       *int     `json:"nps,omitempty"`
		LastLogin string   `json:"last_login"`
		Logins30d int      `json:"logins_30d"`
		Features  []string `json:"features"`
		Beta      bool     `json:"beta"`
		Onboarded bool     `json:"onboarded"`
	}
	var b bytes.Buffer
	for _, u := range g.users {
		r := rec{ID: u.id, AccountID: u.acct.id, Email: u.email, Role: u.role, LastLogin: ts(u.lastLogin),
			Logins30d: u.logins30d, Features: u.features, Beta: u.beta, Onboarded: u.onboarded}
		if u.hasNPS {
			r.NPS = &u.nps
		}
		line, _ := json.Marshal(r) // plain strings, ints and bools always marshal
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func (g *generator) requestsCSV() []byte {
	rows := [][]string{{"user_id", "feature", "requested_at"}}
	for _, q := range g.requests {
		rows = append(rows, []string{q.user.id, q.feature, ts(q.at)})
	}
	return writeCSV(rows)
}

func (g *generator) ticketsNDJSON() []byte {
	type rec struct {
		UserID    string `json:"user_id"`
		TicketID  string `json:"ticket_id"`
		Status    string `json:"status"`
		Priority  string `json:"priority"`
		Category  string `json:"category"`
		CreatedAt string `json:"created_at"`
	}
	var b bytes.Buffer
	for _, t := range g.tickets {
		line, _ := json.Marshal(rec{t.user.id, t.id, t.status, t.priority, t.category, ts(t.created)})
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// configMapsYAML renders one ConfigMap per data file, the file as a literal block
// scalar under its own name. No namespace: apply with -n.
func configMapsYAML(cfg Config, files []File) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated by hack/gendata -users %d -accounts %d -seed %d -now %s. Do not edit;\n",
		cfg.Users, cfg.Accounts, cfg.Seed, cfg.Now.UTC().Format(time.RFC3339))
	b.WriteString("# apply with: kubectl apply -n NAMESPACE --server-side -f configmaps.yaml\n")
	for i, f := range files {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  labels:\n    app.kubernetes.io/part-of: persona-operator-demo\ndata:\n  %s: |\n",
			dataFiles[i].configMap, f.Name)
		for line := range strings.SplitAfterSeq(string(f.Data), "\n") {
			if line == "" {
				continue
			}
			if line != "\n" {
				b.WriteString("    ")
			}
			b.WriteString(line)
		}
	}
	return b.Bytes()
}
