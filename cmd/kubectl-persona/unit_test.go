package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/usersuccess/persona-operator/internal/queryapi"
)

func TestPager(t *testing.T) {
	ids := []string{"u-07", "u-02", "u-09", "u-01", "u-05", "u-03"}
	tests := []struct {
		limit int
		after string
		want  []string
		more  bool
	}{
		{limit: 2, want: []string{"u-01", "u-02"}, more: true},
		{limit: 2, after: "u-02", want: []string{"u-03", "u-05"}, more: true},
		{limit: 2, after: "u-05", want: []string{"u-07", "u-09"}, more: false},
		{limit: 10, want: []string{"u-01", "u-02", "u-03", "u-05", "u-07", "u-09"}},
		{limit: 0, after: "u-04", want: []string{"u-05", "u-07", "u-09"}},
		{limit: 3, after: "u-09", want: []string{}},
	}
	for _, tt := range tests {
		p := newPager(tt.limit, tt.after)
		for _, id := range ids {
			p.add(queryapi.Member{UserID: id})
		}
		got, more := p.result()
		gotIDs := []string{}
		for _, m := range got {
			gotIDs = append(gotIDs, m.UserID)
		}
		if !reflect.DeepEqual(gotIDs, tt.want) || more != tt.more {
			t.Errorf("limit %d after %q: %v more=%v, want %v more=%v", tt.limit, tt.after, gotIDs, more, tt.want, tt.more)
		}
	}
}

func TestEndpointURL(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "https://127.0.0.1:8444", want: "https://127.0.0.1:8444"},
		{in: "https://persona.example/", want: "https://persona.example"},
		{in: "", err: "no query endpoint"},
		{in: "http://127.0.0.1:8444", err: "must be https"},
		{in: "127.0.0.1:8444", err: "must be https"},
		{in: "https://host/some/path", err: "without a path"},
		{in: "https://host:8444?x=1", err: "without a path"},
		{in: "https://[::1", err: "--endpoint"},
	}
	for _, tt := range tests {
		u, err := endpointURL(tt.in)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want one containing %q", tt.in, err, tt.err)
			}
		case err != nil || u.String() != tt.want:
			t.Errorf("%q = %v, %v; want %s", tt.in, u, err, tt.want)
		}
	}
}

func TestEndpointConfig(t *testing.T) {
	base, err := endpointURL("https://127.0.0.1:8444")
	if err != nil {
		t.Fatal(err)
	}
	exec := &clientcmdapi.ExecConfig{Command: "get-token", APIVersion: "client.authentication.k8s.io/v1", InteractiveMode: clientcmdapi.NeverExecInteractiveMode}
	apiServer := rest.TLSClientConfig{CAData: []byte("api server CA"), CertData: []byte("cert"), KeyData: []byte("key")}
	tests := []struct {
		name string
		cfg  rest.Config
		err  string
	}{
		{name: "token", cfg: rest.Config{BearerToken: "abc", TLSClientConfig: apiServer}},
		{name: "token file", cfg: rest.Config{BearerTokenFile: "/tmp/token"}},
		{name: "exec plugin", cfg: rest.Config{ExecProvider: exec}},
		{name: "auth provider", cfg: rest.Config{AuthProvider: &clientcmdapi.AuthProviderConfig{Name: "oidc"}}},
		{name: "client certificate only", cfg: rest.Config{TLSClientConfig: apiServer}, err: "the kubeconfig has no bearer token"},
		{name: "basic auth", cfg: rest.Config{Username: "u", Password: "p"}, err: "not client certificates"},
		{name: "impersonation", cfg: rest.Config{BearerToken: "abc", Impersonate: rest.ImpersonationConfig{UserName: "bob"}}, err: "impersonation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := endpointConfig(&tt.cfg, base, rest.TLSClientConfig{Insecure: true})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The credentials go along; the API server's address, trust and
			// client certificate do not.
			if got.Host != "https://127.0.0.1:8444" || !got.Insecure || got.CAData != nil || got.CertData != nil || got.KeyData != nil {
				t.Errorf("endpoint config %+v", got)
			}
			if got.BearerToken != tt.cfg.BearerToken || got.BearerTokenFile != tt.cfg.BearerTokenFile ||
				got.ExecProvider != tt.cfg.ExecProvider || got.AuthProvider != tt.cfg.AuthProvider {
				t.Errorf("credentials not carried over: %+v", got)
			}
		})
	}
}

func TestEndpointTLSFlags(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		o   options
		err string
	}{
		{o: options{endpointCA: notPEM, endpointInsecure: true}, err: "mutually exclusive"},
		{o: options{endpointCA: notPEM}, err: "no PEM certificate"},
		{o: options{endpointCA: filepath.Join(dir, "missing")}, err: "--endpoint-certificate-authority"},
		{o: options{endpointInsecure: true}},
		{o: options{}},
	}
	for _, tt := range tests {
		cfg, err := tt.o.endpointTLS()
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%+v: error %v, want %q", tt.o, err, tt.err)
			}
			continue
		}
		if err != nil || cfg.Insecure != tt.o.endpointInsecure {
			t.Errorf("%+v: %v %v", tt.o, cfg, err)
		}
	}
}

func TestStatusError(t *testing.T) {
	invalid := statusError(422, []byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Invalid","code":422,"message":"spec.rule: ERROR: <input>:1:5: undefined field 'npss'"}`))
	var ce *codeError
	if !errors.As(invalid, &ce) || ce.code != exitInvalid || !strings.Contains(invalid.Error(), "Error from server (Invalid): spec.rule") {
		t.Errorf("422: %v, want an invalid-input error", invalid)
	}
	forbidden := statusError(403, []byte(`{"kind":"Status","reason":"Forbidden","code":403,"message":"no"}`))
	if errors.As(forbidden, &ce) || !strings.Contains(forbidden.Error(), "Error from server (Forbidden): no") || !strings.Contains(forbidden.Error(), "personas/explain") {
		t.Errorf("403: %v", forbidden)
	}
	garbage := statusError(502, []byte(strings.Repeat("<html>", 100)))
	if !strings.Contains(garbage.Error(), "Bad Gateway") || len(garbage.Error()) > 300 {
		t.Errorf("a non-Status body: %v", garbage)
	}
}

func TestScrub(t *testing.T) {
	if got := scrub(errors.New("dial https://x?t=sekrit failed"), "sekrit"); strings.Contains(got.Error(), "sekrit") {
		t.Errorf("the token survived: %v", got)
	}
	plain := errors.New("connection refused")
	if got := scrub(plain, "sekrit"); got != plain {
		t.Errorf("an error without the token was changed: %v", got)
	}
}

const personaDoc = `apiVersion: personas.usersuccess.io/v1alpha1
kind: Persona
metadata:
  name: p
spec:
  rule: user.nps <= 6
`

func TestReadPersona(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, content, err string
	}{
		{name: "ok.yaml", content: "# a comment\n---\n" + personaDoc + "---\n"},
		{name: "json.json", content: `{"apiVersion":"personas.usersuccess.io/v1alpha1","kind":"Persona","metadata":{"name":"p"},"spec":{"rule":"true"}}`},
		{name: "two.yaml", content: personaDoc + "---\n" + personaDoc, err: "holds 2 documents"},
		{name: "empty.yaml", content: "# nothing\n", err: "holds 0 documents"},
		{name: "playbook.yaml", content: strings.Replace(personaDoc, "kind: Persona", "kind: Playbook", 1), err: `a "Playbook" of "personas.usersuccess.io/v1alpha1", not a Persona`},
		{name: "unknown.yaml", content: personaDoc + "  rules: x\n", err: `unknown field "rules"`},
		{name: "duplicate.yaml", content: personaDoc + "  rule: x\n", err: "already set"},
		{name: "noname.yaml", content: strings.Replace(personaDoc, "  name: p\n", "  labels: {a: b}\n", 1), err: "metadata.name is required"},
		{name: "norule.yaml", content: strings.Replace(personaDoc, "  rule: user.nps <= 6\n", "  stage: trial\n", 1), err: "spec.rule is required"},
		{name: "broken.yaml", content: "spec: [", err: "broken.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := readPersona(write(tt.name, tt.content), nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || p.Name != "p" || p.Spec.Rule == "" {
				t.Errorf("= %+v, %v", p, err)
			}
		})
	}
	if p, err := readPersona("-", strings.NewReader(personaDoc)); err != nil || p.Name != "p" {
		t.Errorf("from standard input: %+v, %v", p, err)
	}
	if _, err := readPersona(filepath.Join(dir, "missing.yaml"), nil); err == nil {
		t.Error("a missing file gave no error")
	}
	if _, err := readPersona(write("huge.yaml", strings.Repeat("#", maxFile+1)), nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a huge file: %v", err)
	}
}

func TestPreviewThresholds(t *testing.T) {
	p := &queryapi.Preview{Namespace: "ns", Persona: "p", Entered: queryapi.Change{Count: 5}, Exited: queryapi.Change{Count: 2}}
	tests := []struct {
		enter, exit int
		code        int
		msg         []string
	}{
		{enter: -1, exit: -1},
		{enter: 5, exit: 2},
		{enter: 4, exit: -1, code: exitExceeded, msg: []string{"5 users would enter, more than --max-enter 4"}},
		{enter: -1, exit: 0, code: exitExceeded, msg: []string{"2 users would exit, more than --max-exit 0"}},
		{enter: 0, exit: 1, code: exitExceeded, msg: []string{"would enter", "would exit"}},
	}
	for _, tt := range tests {
		err := (&previewFlags{maxEnter: tt.enter, maxExit: tt.exit}).check(p)
		if tt.code == 0 {
			if err != nil {
				t.Errorf("max %d/%d: %v", tt.enter, tt.exit, err)
			}
			continue
		}
		var ce *codeError
		if !errors.As(err, &ce) || ce.code != tt.code {
			t.Errorf("max %d/%d: %v, want exit %d", tt.enter, tt.exit, err, tt.code)
			continue
		}
		for _, m := range tt.msg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("max %d/%d: %q lacks %q", tt.enter, tt.exit, err, m)
			}
		}
	}
}

func TestPreviewThresholdSingular(t *testing.T) {
	err := (&previewFlags{maxEnter: 0, maxExit: -1}).check(&queryapi.Preview{Entered: queryapi.Change{Count: 1}})
	if err == nil || !strings.Contains(err.Error(), "1 user would enter") {
		t.Errorf("%v", err)
	}
}

func TestRunExitCodesAndUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{args: []string{"members"}, code: exitError, err: "expected the persona's name: kubectl persona members NAME; got none"},
		{args: []string{"explain", "p"}, code: exitError, err: `expected the persona's name and a user id`},
		{args: []string{"top", " "}, code: exitError, err: "an argument is empty"},
		{args: []string{"members", "p", "--limit", "-1"}, code: exitError, err: "--limit must be 0 (all) or more"},
		{args: []string{"-o", "yaml", "top", "p"}, code: exitError, err: `unknown output format "yaml"`},
		{args: []string{"preview"}, code: exitError, err: "-f FILE"},
		{args: []string{"preview", "-f", "x.yaml", "--sample", "5000"}, code: exitError, err: "--sample must be from 0 to 1000"},
		{args: []string{"preview", "-f", "/nonexistent/x.yaml"}, code: exitInvalid, err: "no such file"},
		{args: []string{"nope"}, code: exitError, err: `unknown command "nope"`},
	}
	for _, tt := range tests {
		var out, errOut strings.Builder
		code := run(tt.args, streams(&out, &errOut))
		if code != tt.code || !strings.Contains(errOut.String(), tt.err) {
			t.Errorf("%v: exit %d %q, want exit %d with %q", tt.args, code, errOut.String(), tt.code, tt.err)
		}
	}
}

func TestExplainTable(t *testing.T) {
	e := &queryapi.Explain{Namespace: "ns", Persona: "p", User: "u-3", Rule: "has(user.nps) && user.nps <= 6",
		Error:      "no such attribute: nps",
		Attributes: []queryapi.Attribute{{Name: "user.nps", Absent: true}},
		Tree: queryapi.Node{Expression: "has(user.nps) && user.nps <= 6", Operator: "&&", Value: "false", Children: []queryapi.Node{
			{Expression: "has(user.nps)", Value: "false"},
			{Expression: "user.nps <= 6", Absent: true, Operands: []queryapi.Operand{{Expression: "user.nps", Absent: true}}},
			{Expression: "user.prefs.lang == \"en\"", Error: "no such key: lang"},
		}}}
	var out strings.Builder
	if err := printExplain(&options{streams: streams(&out, &strings.Builder{})}, e); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{
		{"Rule", "now:", "not", "a", "member:", "evaluating", "the", "rule", "failed:", "no", "such", "attribute:", "nps"},
		{"Recorded:", "not", "a", "member"},
		{"user.nps", "absent"},
		{"false", "&&", "(all", "of)"},
		{"false", "has(user.nps)"},
		{"absent", "user.nps", "<=", "6", "user.nps", "=", "absent"},
		{"error", `user.prefs.lang`, "==", `"en"`, "error:", "no", "such", "key:", "lang"},
	} {
		if !hasLine(out.String(), want...) {
			t.Errorf("no line %q in:\n%s", want, out.String())
		}
	}
}
