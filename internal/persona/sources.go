package persona

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
	"github.com/usersuccess/persona-operator/internal/profile"
)

// Selection is which DataSources a persona is evaluated over, or why it
// cannot be evaluated yet. The Persona controller and the query endpoint
// (explain, preview) both take it from SelectSources.
type Selection struct {
	// Sources are the loaded DataSources to read, sorted by name.
	Sources []string
	// Partial: a User source that has not loaded was passed over because the
	// persona reads none of its attributes. Users only it knows are absent
	// from the view; they keep their membership (KeepAbsent).
	Partial bool
	// Wait says why the persona must wait (membership stays as it is); empty
	// when it can be evaluated.
	Wait string
	// Invalid is the rule (or an insight) not compiling against the schema
	// the DataSources declare, found while some of them are still loading.
	Invalid error
	// NotLoaded says why the persona cannot be evaluated in memory: it
	// reads a DataSource never loaded into memory (spec.load None).
	NotLoaded string
}

// SelectForDatabase decides which DataSources a persona evaluated in the
// database reads: every source spec.dataSources names, or the namespace's,
// loaded into memory or not (the database is read, not the manager's copy).
func SelectForDatabase(spec *v1alpha1.PersonaSpec, namespace string, sources []v1alpha1.DataSource) Selection {
	candidates, wait := found(spec, namespace, sources)
	if wait != "" {
		return Selection{Wait: wait}
	}
	return Selection{Sources: names(candidates)}
}

// found returns the candidates (candidates), or why there are none to read.
func found(spec *v1alpha1.PersonaSpec, namespace string, sources []v1alpha1.DataSource) ([]*v1alpha1.DataSource, string) {
	candidates, missing := candidates(spec, sources)
	switch {
	case len(missing) > 0:
		return nil, "DataSources not found: " + strings.Join(missing, ", ")
	case len(candidates) == 0:
		return nil, "no DataSources in namespace " + namespace
	}
	return candidates, ""
}

// inMemory drops from the candidates the sources never loaded into memory
// (spec.load None) that a persona evaluated in memory can do without, or
// says why it cannot: it names them (spec.dataSources), reads what they
// declare, or one is a User source (it decides which users exist).
func inMemory(spec *v1alpha1.PersonaSpec, candidates []*v1alpha1.DataSource) ([]*v1alpha1.DataSource, string) {
	var kept, none []*v1alpha1.DataSource
	for _, ds := range candidates {
		if ds.Spec.Load == v1alpha1.LoadNone {
			none = append(none, ds)
		} else {
			kept = append(kept, ds)
		}
	}
	if len(none) == 0 {
		return candidates, ""
	}
	c, schema, _, err := compileDeclared(spec, candidates)
	var needed []string
	for _, ds := range none {
		d, derr := profile.Declared(ds)
		if len(spec.DataSources) > 0 || err != nil || derr != nil || d.Entity == v1alpha1.EntityUser || needs(c, schema, d) {
			needed = append(needed, ds.Name)
		}
	}
	if len(needed) == 0 && len(kept) > 0 {
		return kept, ""
	}
	if len(needed) == 0 {
		needed = names(none)
	}
	return nil, NotLoadedMessage(needed)
}

// NotLoadedMessage is why a persona that reads sources never loaded into
// memory is not evaluated (explained, previewed) in memory.
func NotLoadedMessage(sources []string) string {
	return fmt.Sprintf("DataSources %s have spec.load None: their records are read only in their database, "+
		"never loaded into the manager's memory, so this persona cannot be evaluated (explained, previewed) in memory; "+
		"evaluate it in the database (spec.evaluation Database or Auto) or set the DataSources' spec.load to Memory",
		strings.Join(sources, ", "))
}

// SelectSources decides which of the namespace's DataSources a persona reads
// and whether it must wait for some to load. loaded reports whether a
// source's data is in the profile store.
//
// spec.dataSources names the sources read; every one must exist and have
// loaded. Without it the persona reads all the namespace's sources, and one
// that has not loaded (a first sync in progress, a missing ConfigMap) holds it
// only if the persona needs it: it reads an attribute the source declares, or
// the source is a User source and the persona reads an account attribute (a
// User source decides which account a user joins). A source whose attribute
// mapping does not compile may provide anything, so it holds every persona.
// Evaluating without a source the rule reads would make users exit; without
// one it does not read changes no value the rule sees.
//
// While sources load, the rule is compiled against the schema all the
// selected sources declare (what admission checks): a rule that does not
// compile is reported at once instead of hiding behind the wait.
func SelectSources(spec *v1alpha1.PersonaSpec, namespace string, sources []v1alpha1.DataSource, loaded func(name string) bool) Selection {
	candidates, wait := found(spec, namespace, sources)
	if wait != "" {
		return Selection{Wait: wait}
	}
	candidates, notLoaded := inMemory(spec, candidates)
	if notLoaded != "" {
		return Selection{NotLoaded: notLoaded}
	}
	var unloaded []*v1alpha1.DataSource
	for _, ds := range candidates {
		if !loaded(ds.Name) {
			unloaded = append(unloaded, ds)
		}
	}
	if len(unloaded) == 0 {
		return Selection{Sources: names(candidates)}
	}
	c, schema, complete, err := compileDeclared(spec, candidates)
	if err != nil && complete {
		return Selection{Invalid: err}
	}
	var blocking []*v1alpha1.DataSource
	partial := false
	for _, ds := range unloaded {
		d, derr := profile.Declared(ds)
		if len(spec.DataSources) > 0 || err != nil || derr != nil || needs(c, schema, d) {
			blocking = append(blocking, ds)
		} else if d.Entity == v1alpha1.EntityUser {
			partial = true
		}
	}
	if len(blocking) > 0 {
		return Selection{Wait: waitMessage(blocking)}
	}
	var read []*v1alpha1.DataSource
	for _, ds := range candidates {
		if loaded(ds.Name) {
			read = append(read, ds)
		}
	}
	if len(read) == 0 {
		return Selection{Wait: waitMessage(unloaded)}
	}
	return Selection{Sources: names(read), Partial: partial}
}

// candidates are the sources the persona may read, sorted by name, and the
// names spec.dataSources lists that do not exist.
func candidates(spec *v1alpha1.PersonaSpec, sources []v1alpha1.DataSource) ([]*v1alpha1.DataSource, []string) {
	byName := make(map[string]*v1alpha1.DataSource, len(sources))
	for i := range sources {
		byName[sources[i].Name] = &sources[i]
	}
	var out []*v1alpha1.DataSource
	var missing []string
	if len(spec.DataSources) == 0 {
		for i := range sources {
			out = append(out, &sources[i])
		}
	}
	for _, ref := range spec.DataSources {
		if ds, ok := byName[ref.Name]; ok {
			out = append(out, ds)
		} else {
			missing = append(missing, ref.Name)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, missing
}

// compileDeclared compiles the persona against the schema the sources
// declare. complete is false when a source's mapping does not compile: its
// attributes are unknown, so a compile error may only mean it has not loaded.
func compileDeclared(spec *v1alpha1.PersonaSpec, sources []*v1alpha1.DataSource) (*Compiled, profile.Schema, bool, error) {
	s, complete := DeclaredSchema(sources)
	c, err := Compile(spec, s)
	return c, s, complete, err
}

// DeclaredSchema is the schema the sources declare, loaded or not (what
// admission checks rules against). complete is false when a source's
// mapping does not compile: its attributes are unknown.
func DeclaredSchema(sources []*v1alpha1.DataSource) (s profile.Schema, complete bool) {
	var decls []*profile.SourceData
	complete = true
	for _, ds := range sources {
		d, err := profile.Declared(ds)
		if err != nil {
			complete = false
			continue
		}
		decls = append(decls, d)
	}
	return profile.DeclaredSchema(decls), complete
}

// needs reports whether the compiled persona reads what a source declares.
func needs(c *Compiled, s profile.Schema, d *profile.SourceData) bool {
	for _, a := range d.UserDecls {
		if c.ReadsUser(a.Name) {
			return true
		}
	}
	if d.SignalDecl != nil && c.ReadsUser(d.SignalDecl.Name) {
		return true
	}
	for _, a := range d.AccountDecls {
		if c.ReadsAccount(a.Name) {
			return true
		}
	}
	if d.Entity != v1alpha1.EntityUser {
		return false
	}
	if c.ReadsUser(attr.AccountIDAttr) {
		return true
	}
	for name := range s.Account {
		if c.ReadsAccount(name) {
			return true
		}
	}
	return false
}

// waitMessage names each source waited for, with what its status says.
func waitMessage(sources []*v1alpha1.DataSource) string {
	parts := make([]string, len(sources))
	for i, ds := range sources {
		parts[i] = ds.Name
		if why := notLoadedReason(ds); why != "" {
			parts[i] += " (" + why + ")"
		}
	}
	return "waiting for DataSources to load: " + strings.Join(parts, ", ")
}

// notLoadedReason is why a DataSource has not loaded, from its status: its
// Stalled condition, else a Ready condition that is False.
func notLoadedReason(ds *v1alpha1.DataSource) string {
	if c := meta.FindStatusCondition(ds.Status.Conditions, v1alpha1.StalledCondition); c != nil && c.Status == metav1.ConditionTrue {
		return fmt.Sprintf("%s: %s", c.Reason, c.Message)
	}
	if c := meta.FindStatusCondition(ds.Status.Conditions, v1alpha1.ReadyCondition); c != nil && c.Status == metav1.ConditionFalse {
		return fmt.Sprintf("%s: %s", c.Reason, c.Message)
	}
	return ""
}

func names(sources []*v1alpha1.DataSource) []string {
	out := make([]string, len(sources))
	for i, ds := range sources {
		out[i] = ds.Name
	}
	return out
}

// KeepAbsent keeps, after a Partial evaluation, the recorded members (user id
// → account id) whose profile is absent from the view: a User source that has
// not loaded may be the only one that knows them, and a source that has not
// loaded must never make users exit.
func KeepAbsent(ev *Evaluation, v *profile.View, recorded map[string]string) {
	if ev.Matching == nil {
		ev.MatchingOf(v)
	}
	// The members kept have no position: the bitset no longer says what the
	// slices will hold.
	ev.Members = nil
	for id, account := range recorded {
		if _, in := ev.Matching[id]; in {
			continue
		}
		if _, ok := v.User(id); !ok {
			ev.Matching[id] = account
		}
	}
}

// Unpublished are the playbooks whose runs the view does not hold yet, when
// the persona reads user.playbooks (nil otherwise). Right after a manager
// restart the store has no playbook state until each Playbook's first pass:
// evaluating before would make users exit (and re-enter, re-triggering
// playbooks).
func Unpublished(c *Compiled, v *profile.View, playbooks []string) []string {
	if !c.ReadsUser(attr.PlaybooksAttr) {
		return nil
	}
	var out []string
	for _, name := range playbooks {
		if !v.PlaybookPublished(name) {
			out = append(out, name)
		}
	}
	return out
}

// WaitingForPlaybooks is the wait message for Unpublished playbooks.
func WaitingForPlaybooks(unpublished []string) string {
	return "waiting for Playbooks to publish their runs (the persona reads user.playbooks): " + strings.Join(unpublished, ", ")
}
