package datasource

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/connector/inline"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// The benchmarks parse, map and merge 1 M user records of 15 attributes into the
// profile store, as one sync does. Run:
//
//	go test ./internal/datasource -run '^$' -bench . -benchtime 3x -benchmem

const benchUsers = 1_000_000

var benchSpec = v1alpha1.DataSourceSpec{
	Entity: v1alpha1.EntityUser,
	Key:    v1alpha1.RecordKey{UserID: "id", AccountID: "account_id"},
	Attributes: []v1alpha1.AttributeMapping{
		{Name: "email", Type: v1alpha1.TypeString},
		{Name: "role", Type: v1alpha1.TypeString},
		{Name: "nps", Type: v1alpha1.TypeInt},
		{Name: "lastLogin", Type: v1alpha1.TypeTimestamp, From: "last_login"},
		{Name: "logins30d", Type: v1alpha1.TypeInt, From: "logins_30d"},
		{Name: "featuresUsed", Type: v1alpha1.TypeList, From: "features"},
		{Name: "betaTester", Type: v1alpha1.TypeBool, From: "beta"},
		{Name: "onboardingCompleted", Type: v1alpha1.TypeBool, From: "onboarded"},
		{Name: "signedUpAt", Type: v1alpha1.TypeTimestamp, From: "signed_up_at"},
		{Name: "plan", Type: v1alpha1.TypeString},
		{Name: "country", Type: v1alpha1.TypeString},
		{Name: "seats", Type: v1alpha1.TypeInt},
		{Name: "score", Type: v1alpha1.TypeDouble},
	},
}

var roles = []string{"decision_maker", "champion", "end_user", "admin", "billing"}
var plans = []string{"trial", "starter", "pro", "enterprise"}
var countries = []string{"US", "DE", "FR", "GB", "JP", "BR", "IN"}
var features = []string{"reports", "audit_log", "sso", "api", "dashboards"}

var (
	benchOnce           sync.Once
	benchCSV, benchJSON []byte
)

// benchData renders the same 1 M users as CSV and NDJSON (15 fields each).
func benchData() ([]byte, []byte) {
	benchOnce.Do(func() {
		var c, j bytes.Buffer
		c.WriteString("id,account_id,email,role,nps,last_login,logins_30d,features,beta,onboarded,signed_up_at,plan,country,seats,score\n")
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := 0; i < benchUsers; i++ {
			login := base.Add(time.Duration(i%300) * 24 * time.Hour).Format(time.RFC3339)
			signup := base.Add(-time.Duration(i%900) * 24 * time.Hour).Format(time.RFC3339)
			f1, f2 := features[i%5], features[(i/5)%5]
			fmt.Fprintf(&c, "u%d,acct-%d,user%d@example.com,%s,%d,%s,%d,%s;%s,%t,%t,%s,%s,%s,%d,%.2f\n",
				i, i/7, i, roles[i%5], i%11, login, i%60, f1, f2, i%13 == 0, i%4 != 0, signup, plans[i%4], countries[i%7], i%500, float64(i%1000)/10)
			fmt.Fprintf(&j, `{"id":"u%d","account_id":"acct-%d","email":"user%d@example.com","role":"%s","nps":%d,"last_login":"%s","logins_30d":%d,"features":["%s","%s"],"beta":%t,"onboarded":%t,"signed_up_at":"%s","plan":"%s","country":"%s","seats":%d,"score":%.2f}`+"\n",
				i, i/7, i, roles[i%5], i%11, login, i%60, f1, f2, i%13 == 0, i%4 != 0, signup, plans[i%4], countries[i%7], i%500, float64(i%1000)/10)
		}
		benchCSV, benchJSON = c.Bytes(), j.Bytes()
	})
	return benchCSV, benchJSON
}

func benchSync(b *testing.B, format string, data []byte) {
	m, err := attr.NewMapper(&benchSpec)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ns := profile.NewStore().Namespace("bench")
		out := Run(context.Background(), Request{
			Name: "users", Source: inline.New(format, data), Mapper: m, Now: time.Now, MaxShrinkPercent: 50,
			Baseline: benchUsers, // a periodic re-sync: the last sync's count sizes the maps
		})
		if out.FetchErr != nil || out.Accepted != benchUsers || out.Rejected != 0 {
			b.Fatalf("sync: err=%v accepted=%d rejected=%d %v", out.FetchErr, out.Accepted, out.Rejected, out.Rejections)
		}
		ns.Apply(out.Data)
	}
	b.ReportMetric(float64(benchUsers)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkSync1MCSV(b *testing.B) {
	csv, _ := benchData()
	benchSync(b, "CSV", csv)
}

func BenchmarkSync1MNDJSON(b *testing.B) {
	_, ndjson := benchData()
	benchSync(b, "NDJSON", ndjson)
}

// BenchmarkStoreMemory reports the resident heap per profile once 1 M profiles
// of 15 attributes (13 declared plus id and account id) sit in the store.
func BenchmarkStoreMemory(b *testing.B) {
	csv, _ := benchData()
	m, err := attr.NewMapper(&benchSpec)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		ns := profile.NewStore().Namespace("bench")
		out := Run(context.Background(), Request{Name: "users", Source: inline.New("CSV", csv), Mapper: m, Now: time.Now})
		ns.Apply(out.Data)
		out = Outcome{}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/benchUsers, "bytes/profile")
		// The dense snapshot a Persona evaluation reads (built on the first read
		// after a change, cached until the next one): with the columns of a
		// 4-attribute rule, then with a column for every attribute.
		ns.Read(nil, func(v *profile.View) { v.UserFields([]string{"role", "nps", "plan", "lastLogin"}) })
		runtime.GC()
		var snap runtime.MemStats
		runtime.ReadMemStats(&snap)
		b.ReportMetric(float64(snap.HeapAlloc-after.HeapAlloc)/benchUsers, "snapshot-4-bytes/profile")
		ns.Read(nil, func(v *profile.View) {
			names := []string{"id", "accountId"}
			for _, a := range benchSpec.Attributes {
				names = append(names, a.Name)
			}
			v.UserFields(names)
		})
		runtime.GC()
		var all runtime.MemStats
		runtime.ReadMemStats(&all)
		b.ReportMetric(float64(all.HeapAlloc-after.HeapAlloc)/benchUsers, "snapshot-all-bytes/profile")
		runtime.KeepAlive(ns)
	}
}
