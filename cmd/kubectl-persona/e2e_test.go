package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/queryapi"
)

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}

func TestMembers(t *testing.T) {
	setup(t)
	first := kubectlPersona(t, suite.analyst, "-n", suite.ns, "members", "at-risk", "--limit", "1")
	if first.code != exitOK {
		t.Fatalf("exit %d: %s", first.code, first.stderr)
	}
	lines := strings.Split(strings.TrimSpace(first.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "USER") || !strings.HasPrefix(lines[1], "u-01") || !strings.Contains(lines[1], "acme") {
		t.Errorf("page 1:\n%s", first.stdout)
	}
	mustContain(t, "the page hint", first.stderr, "2 members in all", "--continue u-01")

	second := kubectlPersona(t, suite.analyst, "-n", suite.ns, "members", "at-risk", "--limit", "1", "--continue", "u-01")
	if second.code != exitOK || !strings.Contains(second.stdout, "u-06") || strings.Contains(second.stdout, "u-01") || second.stderr != "" {
		t.Errorf("page 2: exit %d\n%s%s", second.code, second.stdout, second.stderr)
	}

	js := kubectlPersona(t, suite.analyst, "-n", suite.ns, "members", "at-risk", "-o", "json")
	var page membersPage
	if err := json.Unmarshal([]byte(js.stdout), &page); err != nil || js.code != exitOK {
		t.Fatalf("-o json: %v (exit %d)", err, js.code)
	}
	if page.Total != 2 || len(page.Members) != 2 || page.Members[0].UserID != "u-01" || page.Members[1].AccountID != "acme" ||
		page.Members[0].EnteredAt.IsZero() || page.Continue != "" {
		t.Errorf("-o json = %+v", page)
	}

	// A persona that is not Ready is not one without members: both commands
	// say why and exit non-zero, unless asked to show what is recorded.
	notReady := &v1alpha1.Persona{ObjectMeta: metav1.ObjectMeta{Namespace: suite.ns, Name: "orphan"},
		Spec: v1alpha1.PersonaSpec{Rule: "true", DataSources: []v1alpha1.LocalObjectReference{{Name: "no-such-source"}}}}
	if err := suite.k8s.Create(t.Context(), notReady); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = suite.k8s.Delete(context.Background(), notReady) })
	for _, cmd := range []string{"members", "top"} {
		var r result
		deadline := time.Now().Add(30 * time.Second)
		for r = kubectlPersona(t, suite.analyst, "-n", suite.ns, cmd, "orphan"); time.Now().Before(deadline) &&
			!strings.Contains(r.stderr, "WaitingForSources"); r = kubectlPersona(t, suite.analyst, "-n", suite.ns, cmd, "orphan") {
			time.Sleep(200 * time.Millisecond)
		}
		if r.code != exitError {
			t.Errorf("%s of a persona that is not Ready: exit %d, want %d", cmd, r.code, exitError)
		}
		mustContain(t, cmd+" of a persona that is not Ready", r.stderr,
			"persona "+suite.ns+"/orphan is not Ready (WaitingForSources)", "no-such-source", "--ignore-not-ready")
		if ignored := kubectlPersona(t, suite.analyst, "-n", suite.ns, cmd, "orphan", "--ignore-not-ready"); ignored.code != exitOK {
			t.Errorf("%s --ignore-not-ready: exit %d: %s", cmd, ignored.code, ignored.stderr)
		}
	}

	missing := kubectlPersona(t, suite.analyst, "-n", suite.ns, "members", "ghosts")
	if missing.code != exitError || !strings.Contains(missing.stderr, `persona "ghosts" not found in namespace "`+suite.ns+`"`) {
		t.Errorf("an unknown persona: exit %d %s", missing.code, missing.stderr)
	}
}

func TestExplain(t *testing.T) {
	setup(t)
	member := kubectlPersona(t, suite.analyst, "-n", suite.ns, "explain", "at-risk", "u-01")
	if member.code != exitOK {
		t.Fatalf("exit %d: %s", member.code, member.stderr)
	}
	mustContain(t, "explain u-01", member.stdout, "user u-01 (account acme)", "Rule now:  true: a member", "Recorded:  member since",
		`user.nps <= 6`, "user.nps = 4", `account.tier = "enterprise"`)

	// u-03 has no NPS: the guard is false and the comparison reads an absent attribute.
	absent := kubectlPersona(t, suite.analyst, "-n", suite.ns, "explain", "at-risk", "u-03")
	if absent.code != exitOK {
		t.Fatalf("exit %d: %s", absent.code, absent.stderr)
	}
	mustContain(t, "explain u-03", absent.stdout, "Rule now:  false: not a member", "Recorded:  not a member", "user.nps = absent")
	for _, want := range [][]string{{"user.nps", "absent"}, {"false", "has(user.nps)"}, {"absent", "user.nps", "<=", "6"}, {"false", "&&", "(all", "of)"}} {
		if !hasLine(absent.stdout, want...) {
			t.Errorf("explain u-03 has no line %q:\n%s", want, absent.stdout)
		}
	}

	// u-04's account renews in 200 days: the window comparison is what fails.
	js := kubectlPersona(t, suite.analyst, "-n", suite.ns, "explain", "at-risk", "u-04", "-o", "json")
	var e queryapi.Explain
	if err := json.Unmarshal([]byte(js.stdout), &e); err != nil || js.code != exitOK {
		t.Fatalf("-o json: %v (exit %d)", err, js.code)
	}
	var falseClauses []string
	for _, c := range e.Tree.Children {
		if c.Value == "false" {
			falseClauses = append(falseClauses, c.Expression)
		}
	}
	if e.Match || e.Recorded != nil || len(falseClauses) != 1 || !strings.HasPrefix(falseClauses[0], "account.renewalDate - now <=") {
		t.Errorf("explain u-04: match %v, false clauses %q", e.Match, falseClauses)
	}

	unknown := kubectlPersona(t, suite.analyst, "-n", suite.ns, "explain", "at-risk", "u-99")
	if unknown.code != exitError || !strings.Contains(unknown.stderr, `Error from server (NotFound): user "u-99" has no profile`) {
		t.Errorf("an unknown user: exit %d %s", unknown.code, unknown.stderr)
	}
}

func TestExplainAuthAndTLS(t *testing.T) {
	setup(t)
	denied := kubectlPersona(t, suite.outsider, "-n", suite.ns, "explain", "at-risk", "u-01")
	if denied.code != exitError {
		t.Errorf("outsider: exit %d", denied.code)
	}
	mustContain(t, "the outsider's error", denied.stderr, "Error from server (Forbidden)",
		`User "system:serviceaccount:`+suite.ns+`:outsider" cannot get resource "personas/explain"`)

	noToken := kubectlPersona(t, suite.admin, "-n", suite.ns, "explain", "at-risk", "u-01")
	if noToken.code != exitError || !strings.Contains(noToken.stderr, "the kubeconfig has no bearer token") {
		t.Errorf("a client-certificate kubeconfig: exit %d %s", noToken.code, noToken.stderr)
	}

	// --token overrides the kubeconfig's credentials, as for kubectl.
	badToken := kubectlPersona(t, suite.analyst, "-n", suite.ns, "--token", "not-a-token", "explain", "at-risk", "u-01")
	if badToken.code != exitError || !strings.Contains(badToken.stderr, "Error from server (Unauthorized)") || strings.Contains(badToken.stderr, "not-a-token") {
		t.Errorf("an invalid token: exit %d %s", badToken.code, badToken.stderr)
	}

	// Without the CA the self-signed certificate is refused; with
	// --endpoint-insecure-skip-tls-verify it is not checked.
	var out, errOut strings.Builder
	args := []string{"--kubeconfig", suite.analyst, "-n", suite.ns, "--endpoint", suite.endpoint, "explain", "at-risk", "u-01"}
	code := run(args, streams(&out, &errOut))
	t.Logf("without the endpoint's CA: %s(exit %d)", errOut.String(), code)
	if code != exitError || !strings.Contains(errOut.String(), "certificate signed by unknown authority") {
		t.Errorf("an untrusted certificate: exit %d %s", code, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run(append([]string{"--endpoint-insecure-skip-tls-verify"}, args...), streams(&out, &errOut)); code != exitOK || !strings.Contains(out.String(), "true: a member") {
		t.Errorf("--endpoint-insecure-skip-tls-verify: exit %d %s%s", code, out.String(), errOut.String())
	}
}

func TestEndpointFromTheEnvironment(t *testing.T) {
	setup(t)
	t.Setenv(envEndpoint, suite.endpoint)
	t.Setenv(envCA, suite.caFile)
	var out, errOut strings.Builder
	code := run([]string{"--kubeconfig", suite.analyst, "-n", suite.ns, "explain", "at-risk", "u-01"}, streams(&out, &errOut))
	if code != exitOK || !strings.Contains(out.String(), "true: a member") {
		t.Errorf("with $%s and $%s: exit %d %s%s", envEndpoint, envCA, code, out.String(), errOut.String())
	}
}

// editedYAML widens the renewal window to a year and lowers the NPS bound:
// u-04 (globex, 200 days) enters, u-06 (NPS 6) exits.
const editedYAML = `apiVersion: personas.usersuccess.io/v1alpha1
kind: Persona
metadata:
  name: at-risk
spec:
  stage: retention
  rule: >-
    account.tier == "enterprise"
    && account.renewalDate - now <= duration("8760h")
    && user.role == "decision_maker"
    && has(user.nps) && user.nps <= 4
  insights:
  - name: arr-at-risk
    type: Sum
    expression: account.arr
`

func TestPreview(t *testing.T) {
	setup(t)
	file := writeFile(t, "at-risk.yaml", editedYAML)
	r := kubectlPersona(t, suite.analyst, "-n", suite.ns, "preview", "-f", file)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	mustContain(t, "preview", r.stdout, "compared with the live persona", "Sources:            crm-accounts, feature-requests, product-users",
		"Members:            2 (u-01, u-04)", "Would enter:        1 (u-04)", "Would exit:         1 (u-06)")
	if !hasLine(r.stdout, "arr-at-risk", "Sum", "340000", "2") {
		t.Errorf("the insight of the edited rule is missing:\n%s", r.stdout)
	}
	table := r.stdout[strings.Index(r.stdout, "PLAYBOOK"):]
	rows := strings.Split(strings.TrimSpace(table), "\n")
	if len(rows) < 3 || !fields(rows[1], "csm-outreach", "Enter", "personaRef", "1", "0") || !fields(rows[2], "renewal-exit-survey", "Exit", "stage", "1", "0") {
		t.Errorf("playbooks, want csm-outreach launching for u-04 and the exit survey for u-06 (trial-nudge does not match):\n%s", table)
	}

	js := kubectlPersona(t, suite.analyst, "-n", suite.ns, "preview", "-f", file, "-o", "json", "--sample", "1")
	var p queryapi.Preview
	if err := json.Unmarshal([]byte(js.stdout), &p); err != nil || js.code != exitOK {
		t.Fatalf("-o json: %v (exit %d)", err, js.code)
	}
	if !p.Exists || p.Members != 2 || len(p.Sample) != 1 || p.Entered.Count != 1 || p.Exited.Sample[0] != "u-06" || len(p.Playbooks) != 2 {
		t.Errorf("-o json = %+v", p)
	}
}

// hasLine reports whether some line of s starts, field by field, with want.
func hasLine(s string, want ...string) bool {
	for _, l := range strings.Split(s, "\n") {
		if fields(l, want...) {
			return true
		}
	}
	return false
}

func fields(line string, want ...string) bool {
	got := strings.Fields(line)
	if len(got) < len(want) {
		return false
	}
	for i, w := range want {
		if got[i] != w {
			return false
		}
	}
	return true
}

func TestPreviewAsACICheck(t *testing.T) {
	setup(t)
	file := writeFile(t, "at-risk.yaml", editedYAML)
	within := kubectlPersona(t, suite.analyst, "-n", suite.ns, "preview", "-f", file, "--max-enter", "1", "--max-exit", "1")
	if within.code != exitOK {
		t.Errorf("within the limits: exit %d %s", within.code, within.stderr)
	}
	over := kubectlPersona(t, suite.analyst, "-n", suite.ns, "preview", "-f", file, "--max-enter", "5", "--max-exit", "0")
	if over.code != exitExceeded || !strings.Contains(over.stderr, "1 user would exit, more than --max-exit 0") || strings.Contains(over.stderr, "would enter") {
		t.Errorf("over --max-exit: exit %d %s", over.code, over.stderr)
	}
	if !strings.Contains(over.stdout, "Would exit:         1 (u-06)") {
		t.Errorf("the report is printed before failing:\n%s", over.stdout)
	}

	invalid := writeFile(t, "invalid.yaml", strings.Replace(editedYAML, "user.nps <= 4", "user.npss <= 4", 1))
	bad := kubectlPersona(t, suite.analyst, "-n", suite.ns, "preview", "-f", invalid)
	if bad.code != exitInvalid {
		t.Errorf("an invalid rule: exit %d, want %d", bad.code, exitInvalid)
	}
	mustContain(t, "the invalid rule's error", bad.stderr, "Error from server (Invalid): spec.rule: ERROR: <input>:1:", "undefined field 'npss'")

	typo := writeFile(t, "typo.yaml", strings.Replace(editedYAML, "  rule:", "  rules:", 1))
	if r := kubectlPersona(t, suite.analyst, "-n", suite.ns, "preview", "-f", typo); r.code != exitInvalid || !strings.Contains(r.stderr, `unknown field "rules"`) {
		t.Errorf("a misspelt field: exit %d %s", r.code, r.stderr)
	}

	other := kubectlPersona(t, suite.analyst, "-n", "default", "preview", "-f", writeFile(t, "ns.yaml",
		strings.Replace(editedYAML, "  name: at-risk\n", "  name: at-risk\n  namespace: "+suite.ns+"\n", 1)))
	if other.code != exitInvalid || !strings.Contains(other.stderr, "does not match --namespace") {
		t.Errorf("a namespace mismatch: exit %d %s", other.code, other.stderr)
	}
}

func TestPreviewOfANewPersona(t *testing.T) {
	setup(t)
	file := writeFile(t, "champions.yaml", `apiVersion: personas.usersuccess.io/v1alpha1
kind: Persona
metadata: {name: champions}
spec:
  stage: advocacy
  rule: user.role == "champion"
`)
	r := kubectlPersona(t, suite.analyst, "-n", suite.ns, "preview", "-f", file, "--max-enter", "0")
	if r.code != exitExceeded {
		t.Errorf("exit %d, want %d: everyone of a new persona enters", r.code, exitExceeded)
	}
	mustContain(t, "preview of a new persona", r.stdout, "a new persona: everyone enters", "Members:            1 (u-02)",
		"Would enter:        1 (u-02)", "No Playbook of the namespace matches this persona.")
}

func TestTop(t *testing.T) {
	setup(t)
	r := kubectlPersona(t, suite.analyst, "-n", suite.ns, "top", "at-risk")
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(r.stdout, "\n")
	find := func(prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), prefix) {
				return l
			}
		}
		return ""
	}
	if !fields(find("top-feature-requests"), "top-feature-requests", "TopValues", "audit_log", "2", "2") || !fields(find("sso"), "sso", "1") ||
		!fields(find("arr-at-risk"), "arr-at-risk", "Sum", "500000", "2") {
		t.Errorf("top:\n%s", r.stdout)
	}
	mustContain(t, "top", r.stdout, "2 members, evaluated at")

	js := kubectlPersona(t, suite.analyst, "-n", suite.ns, "top", "at-risk", "-o", "json")
	var v topView
	if err := json.Unmarshal([]byte(js.stdout), &v); err != nil || v.Members != 2 || len(v.Insights) != 2 || v.Insights[0].Values[0].Value != "audit_log" {
		t.Errorf("-o json: %v %+v", err, v)
	}
}
