package persona

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// source is a DataSource declaring attrs (name:type) for an entity.
func source(name string, entity v1alpha1.Entity, attrs ...string) v1alpha1.DataSource {
	ds := v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.DataSourceSpec{Entity: entity}}
	if entity == v1alpha1.EntitySignal {
		ds.Spec.Signal = &v1alpha1.SignalSpec{Attribute: name}
	}
	for _, a := range attrs {
		n, t, _ := strings.Cut(a, ":")
		ds.Spec.Attributes = append(ds.Spec.Attributes, v1alpha1.AttributeMapping{Name: n, Type: v1alpha1.AttributeType(t)})
	}
	return ds
}

func stalled(ds v1alpha1.DataSource, reason, msg string) v1alpha1.DataSource {
	ds.Status.Conditions = []metav1.Condition{
		{Type: v1alpha1.StalledCondition, Status: metav1.ConditionTrue, Reason: reason, Message: msg},
		{Type: v1alpha1.ReadyCondition, Status: metav1.ConditionFalse, Reason: reason, Message: msg},
	}
	return ds
}

func TestSelectSources(t *testing.T) {
	crm := source("crm-users", v1alpha1.EntityUser, "tier:String")
	usage := source("usage", v1alpha1.EntityUser, "logins:Int")
	accounts := source("accounts", v1alpha1.EntityAccount, "arr:Int")
	tickets := source("tickets", v1alpha1.EntitySignal, "status:String")
	broken := source("broken", v1alpha1.EntityUser, "x:Int")
	broken.Spec.Attributes[0].Expression = "record.(" // does not compile
	stalledCRM := stalled(crm, "ConfigMapNotFound", `spec.inline.configMapRef: ConfigMap "crm" not found`)
	all := []v1alpha1.DataSource{stalledCRM, usage, accounts, tickets}
	loadedExcept := func(names ...string) func(string) bool {
		return func(n string) bool {
			for _, x := range names {
				if n == x {
					return false
				}
			}
			return true
		}
	}
	ref := func(names ...string) []v1alpha1.LocalObjectReference {
		var out []v1alpha1.LocalObjectReference
		for _, n := range names {
			out = append(out, v1alpha1.LocalObjectReference{Name: n})
		}
		return out
	}
	tests := []struct {
		name    string
		spec    v1alpha1.PersonaSpec
		sources []v1alpha1.DataSource
		loaded  func(string) bool
		want    Selection
		invalid string
	}{
		{"all loaded: all of them", v1alpha1.PersonaSpec{Rule: "user.logins < 3"}, all, loadedExcept(),
			Selection{Sources: []string{"accounts", "crm-users", "tickets", "usage"}}, ""},
		{"dataSources: only those", v1alpha1.PersonaSpec{Rule: "true", DataSources: ref("usage", "accounts")}, all, loadedExcept(),
			Selection{Sources: []string{"accounts", "usage"}}, ""},
		{"a listed source missing", v1alpha1.PersonaSpec{Rule: "true", DataSources: ref("usage", "crm", "x")}, all, loadedExcept(),
			Selection{Wait: "DataSources not found: crm, x"}, ""},
		{"no sources at all", v1alpha1.PersonaSpec{Rule: "true"}, nil, loadedExcept(),
			Selection{Wait: "no DataSources in namespace team"}, ""},
		{"a stalled source the rule does not read: the others, partially", v1alpha1.PersonaSpec{Rule: "user.logins < 3"}, all, loadedExcept("crm-users"),
			Selection{Sources: []string{"accounts", "tickets", "usage"}, Partial: true}, ""},
		{"a stalled source an insight reads", v1alpha1.PersonaSpec{Rule: "user.logins < 3", Insights: []v1alpha1.InsightSpec{
			{Name: "tiers", Type: v1alpha1.InsightSum, Expression: "size(user.tier)"}}}, all, loadedExcept("crm-users"),
			Selection{Wait: `waiting for DataSources to load: crm-users (ConfigMapNotFound: spec.inline.configMapRef: ConfigMap "crm" not found)`}, ""},
		{"a stalled source the rule reads, with its stall reason", v1alpha1.PersonaSpec{Rule: `user.tier == "gold"`}, all, loadedExcept("crm-users"),
			Selection{Wait: `waiting for DataSources to load: crm-users (ConfigMapNotFound: spec.inline.configMapRef: ConfigMap "crm" not found)`}, ""},
		{"an unloaded User source decides accounts", v1alpha1.PersonaSpec{Rule: "account.arr > 10"}, all, loadedExcept("crm-users"),
			Selection{Wait: `waiting for DataSources to load: crm-users (ConfigMapNotFound: spec.inline.configMapRef: ConfigMap "crm" not found)`}, ""},
		{"an unloaded Account source not read", v1alpha1.PersonaSpec{Rule: "user.logins < 3"}, all, loadedExcept("accounts"),
			Selection{Sources: []string{"crm-users", "tickets", "usage"}}, ""},
		{"an unloaded Account source read", v1alpha1.PersonaSpec{Rule: "account.arr > 10"}, all, loadedExcept("accounts"),
			Selection{Wait: "waiting for DataSources to load: accounts"}, ""},
		{"an unloaded Signal source read", v1alpha1.PersonaSpec{Rule: "size(user.tickets) > 0"}, all, loadedExcept("tickets"),
			Selection{Wait: "waiting for DataSources to load: tickets"}, ""},
		{"a listed source not loaded holds even unread", v1alpha1.PersonaSpec{Rule: "user.logins < 3", DataSources: ref("crm-users", "usage")}, all, loadedExcept("crm-users"),
			Selection{Wait: `waiting for DataSources to load: crm-users (ConfigMapNotFound: spec.inline.configMapRef: ConfigMap "crm" not found)`}, ""},
		{"an invalid rule is reported while sources load", v1alpha1.PersonaSpec{Rule: "user.nope > 1"}, all, loadedExcept("crm-users"),
			Selection{}, "spec.rule: "},
		{"a source with a broken mapping holds everyone", v1alpha1.PersonaSpec{Rule: "user.logins < 3"}, []v1alpha1.DataSource{usage, broken}, loadedExcept("broken"),
			Selection{Wait: "waiting for DataSources to load: broken"}, ""},
		{"nothing loaded", v1alpha1.PersonaSpec{Rule: "true"}, []v1alpha1.DataSource{usage}, loadedExcept("usage"),
			Selection{Wait: "waiting for DataSources to load: usage"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SelectSources(&tt.spec, "team", tt.sources, tt.loaded)
			if tt.invalid != "" {
				if got.Invalid == nil || !strings.Contains(got.Invalid.Error(), tt.invalid) || got.Wait != "" {
					t.Fatalf("SelectSources = %+v, want Invalid containing %q", got, tt.invalid)
				}
				return
			}
			if got.Invalid != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SelectSources =\n %+v, want\n %+v", got, tt.want)
			}
		})
	}
}

func TestKeepAbsent(t *testing.T) {
	n := store(t) // profiles u1, u2, u3
	n.Read(nil, func(v *profile.View) {
		ev := Evaluation{Matching: map[string]string{"u1": "a1"}}
		// u2 has a profile and no longer matches: it exits. u9 has none (only
		// a source that has not loaded knows it): it stays, with its account.
		KeepAbsent(&ev, v, map[string]string{"u1": "a1", "u2": "a2", "u9": "a9"})
		if want := map[string]string{"u1": "a1", "u9": "a9"}; !reflect.DeepEqual(ev.Matching, want) {
			t.Errorf("Matching = %v, want %v", ev.Matching, want)
		}
	})
}

func TestUnpublished(t *testing.T) {
	n := store(t)
	n.PublishPlaybook("welcome", map[string]profile.PlaybookState{})
	n.Read(nil, func(v *profile.View) {
		for _, tt := range []struct {
			rule string
			want []string
		}{
			{`"welcome" in user.playbooks`, []string{"onboarding"}},
			{`user.role == "x"`, nil},
		} {
			c, err := Compile(&v1alpha1.PersonaSpec{Rule: tt.rule}, v.Schema())
			if err != nil {
				t.Fatal(err)
			}
			if got := Unpublished(c, v, []string{"onboarding", "welcome"}); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: Unpublished = %v, want %v", tt.rule, got, tt.want)
			}
		}
	})
}

// Sources with spec.load None are never loaded: a persona evaluated in
// memory goes without those it does not need, and is refused the others;
// one evaluated in the database reads them all.
func TestSelectSourcesNotLoaded(t *testing.T) {
	none := func(ds v1alpha1.DataSource) v1alpha1.DataSource {
		ds.Spec.Load = v1alpha1.LoadNone
		return ds
	}
	usage := source("usage", v1alpha1.EntityUser, "logins:Int")
	accounts := none(source("accounts", v1alpha1.EntityAccount, "arr:Int"))
	crm := none(source("crm-users", v1alpha1.EntityUser, "tier:String"))
	tickets := none(source("tickets", v1alpha1.EntitySignal, "status:String"))
	loaded := func(name string) bool { return name == "usage" }
	tests := []struct {
		name     string
		spec     v1alpha1.PersonaSpec
		sources  []v1alpha1.DataSource
		want     []string // the sources read, nil when refused
		refusing string   // the sources named in the refusal
	}{
		{"an Account source not read is left out", v1alpha1.PersonaSpec{Rule: "user.logins < 3"},
			[]v1alpha1.DataSource{usage, accounts, tickets}, []string{"usage"}, ""},
		{"an Account source read refuses", v1alpha1.PersonaSpec{Rule: "account.arr > 3"},
			[]v1alpha1.DataSource{usage, accounts}, nil, "accounts"},
		{"a Signal source an insight reads refuses", v1alpha1.PersonaSpec{Rule: "true", Insights: []v1alpha1.InsightSpec{
			{Name: "n", Type: v1alpha1.InsightSum, Expression: "size(user.tickets)"}}},
			[]v1alpha1.DataSource{usage, tickets}, nil, "tickets"},
		{"a User source decides which users exist", v1alpha1.PersonaSpec{Rule: "user.logins < 3"},
			[]v1alpha1.DataSource{usage, crm}, nil, "crm-users"},
		{"a listed source refuses even unread", v1alpha1.PersonaSpec{Rule: "user.logins < 3",
			DataSources: []v1alpha1.LocalObjectReference{{Name: "usage"}, {Name: "accounts"}}},
			[]v1alpha1.DataSource{usage, accounts}, nil, "accounts"},
		{"only unloaded sources", v1alpha1.PersonaSpec{Rule: "true"},
			[]v1alpha1.DataSource{accounts}, nil, "accounts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SelectSources(&tt.spec, "team", tt.sources, loaded)
			if tt.refusing != "" {
				if got.NotLoaded == "" || !strings.Contains(got.NotLoaded, "DataSources "+tt.refusing+" have spec.load None") ||
					got.Sources != nil || got.Wait != "" {
					t.Fatalf("SelectSources = %+v, want a refusal naming %s", got, tt.refusing)
				}
				return
			}
			if got.NotLoaded != "" || !reflect.DeepEqual(got.Sources, tt.want) {
				t.Errorf("SelectSources = %+v, want sources %v", got, tt.want)
			}
		})
	}
	db := SelectForDatabase(&v1alpha1.PersonaSpec{Rule: "account.arr > 3"}, "team", []v1alpha1.DataSource{usage, accounts, crm})
	if want := []string{"accounts", "crm-users", "usage"}; !reflect.DeepEqual(db, Selection{Sources: want}) {
		t.Errorf("SelectForDatabase = %+v, want every source %v", db, want)
	}
	if db := SelectForDatabase(&v1alpha1.PersonaSpec{Rule: "true", DataSources: []v1alpha1.LocalObjectReference{{Name: "x"}}},
		"team", []v1alpha1.DataSource{usage}); db.Wait != "DataSources not found: x" {
		t.Errorf("SelectForDatabase with a missing source = %+v", db)
	}
}
