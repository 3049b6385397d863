package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/usersuccess/persona-operator/internal/query/querytest"
)

// TestInstallRecipe follows "A real install, step by step" of
// docs/kubectl-persona.md against the suite's kube-apiserver and query
// endpoint: every `$ kubectl` command of the section runs (kubectl persona
// in-process, as the CI ServiceAccount the recipe binds; the others with the
// control plane's kubectl as its admin), a command followed by an output line
// must print it, and the CA file the recipe extracts must be what the plugin
// trusts. Two things need a container runtime and are stood in for:
// cert-manager (the test writes the Secret query-server-cert with the
// endpoint's certificate as ca.crt) and the port-forward (skipped: the
// endpoint already listens on loopback).
func TestInstallRecipe(t *testing.T) {
	setup(t)
	ctx := context.Background()
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	section := recipeSection(t)

	// cert-manager's part: the issued Secret, with the CA as ca.crt.
	if err := suite.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "persona-operator-system"}}); err != nil {
		t.Fatal(err)
	}
	if err := suite.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "persona-operator-system", Name: "query-server-cert"},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{"ca.crt": suite.server.CertificatePEM(),
			"tls.crt": suite.server.CertificatePEM(), "tls.key": []byte("not used by the test")}}); err != nil {
		t.Fatal(err)
	}
	// The ServiceAccount the recipe binds, and its kubeconfig (a token).
	token, err := querytest.ServiceAccountToken(ctx, suite.cs, suite.ns, "persona-ci")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ci, err := querytest.Kubeconfig(dir, "persona-ci", suite.cfg, token, suite.ns)
	if err != nil {
		t.Fatal(err)
	}
	// The ClusterRole as the installer names it (namePrefix persona-operator-).
	var role rbacv1.ClusterRole
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "query_reader_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatal(err)
	}
	role.Name = "persona-operator-" + role.Name
	if err := querytest.ClusterRole(ctx, suite.cs, &role); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for name, body := range section.files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(body, "team-cs", suite.ns)), 0o600); err != nil {
			t.Fatal(err)
		}
		files[name] = p
	}

	ran, plugin := 0, 0
	for i, step := range section.steps {
		line := strings.ReplaceAll(step.command, "team-cs", suite.ns)
		switch {
		case strings.HasPrefix(line, "export "):
			for _, kv := range strings.Fields(strings.TrimPrefix(line, "export ")) {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case envEndpoint:
					v = suite.endpoint // in place of the port-forward's 127.0.0.1:8444
				case envCA:
					v = filepath.Join(dir, v) // the file step 1 wrote
				}
				t.Setenv(k, v)
			}
			continue
		case strings.Contains(line, " port-forward "):
			continue // stood in for: see above
		case strings.HasPrefix(line, "kubectl persona "):
			args := strings.Fields(strings.TrimPrefix(line, "kubectl persona "))
			var out, errOut strings.Builder
			code := run(append([]string{"--kubeconfig", ci}, args...), streams(&out, &errOut))
			t.Logf("$ %s\n%s%s", line, out.String(), errOut.String())
			if code != exitOK {
				t.Errorf("docs/kubectl-persona.md:%d: %q: exit %d: %s", step.line, step.command, code, errOut.String())
			}
			plugin++
		case strings.HasPrefix(line, "kubectl "):
			args, redirect := shellWords(t, strings.TrimPrefix(line, "kubectl "))
			for j, a := range args {
				if p, ok := files[a]; ok {
					args[j] = p
				}
			}
			// A command whose output the page shows is retried for a few
			// seconds: RBAC sees a new binding a moment after it is created.
			var out bytes.Buffer
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				cmd := exec.Command(kubectl, append([]string{"--kubeconfig", suite.admin}, args...)...)
				var errOut bytes.Buffer
				out.Reset()
				cmd.Stdout, cmd.Stderr = &out, &errOut
				err := cmd.Run()
				if step.output == "" || strings.TrimSpace(out.String()) == step.output || time.Now().After(deadline) {
					if err != nil && step.output == "" {
						t.Fatalf("docs/kubectl-persona.md:%d: %q: %v: %s", step.line, step.command, err, errOut.String())
					}
					break
				}
			}
			t.Logf("$ %s\n%s", line, out.String())
			if redirect != "" {
				if err := os.WriteFile(filepath.Join(dir, redirect), out.Bytes(), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if step.output != "" && strings.TrimSpace(out.String()) != step.output {
				t.Errorf("docs/kubectl-persona.md:%d: %q printed %q, the page says %q", step.line, step.command, out.String(), step.output)
			}
		default:
			t.Fatalf("docs/kubectl-persona.md:%d: step %d %q: the recipe has only kubectl and export commands", step.line, i, step.command)
		}
		ran++
	}
	if ran < 5 || plugin < 2 {
		t.Errorf("ran %d commands (%d of the plugin): the recipe section is not where the test looks", ran, plugin)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "persona-query-ca.crt"))
	if err != nil || !bytes.Equal(ca, suite.server.CertificatePEM()) {
		t.Errorf("the extracted CA is not the Secret's ca.crt (%v)", err)
	}
}

// recipe is the section's commands and files.
type recipe struct {
	steps []recipeStep
	files map[string]string
}

type recipeStep struct {
	line            int
	command, output string
}

// recipeSection reads the console blocks and the `<!-- file: NAME -->` yaml
// blocks of "## A real install, step by step".
func recipeSection(t *testing.T) recipe {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "kubectl-persona.md"))
	if err != nil {
		t.Fatal(err)
	}
	r := recipe{files: map[string]string{}}
	in, block, file := false, "", ""
	var body []string
	prev := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## A real install, step by step"
		case !in:
		case block == "" && strings.HasPrefix(line, "```"):
			block, body = strings.TrimPrefix(line, "```"), nil
			file = ""
			if name, ok := strings.CutPrefix(prev, "<!-- file: "); ok {
				file = strings.TrimSuffix(name, " -->")
			}
		case block != "" && line == "```":
			if block == "yaml" && file != "" {
				r.files[file] = strings.Join(body, "\n") + "\n"
			}
			block = ""
		case block == "console":
			if cmd, ok := strings.CutPrefix(line, "$ "); ok {
				r.steps = append(r.steps, recipeStep{line: n, command: cmd})
			} else if len(r.steps) > 0 && strings.TrimSpace(line) != "" {
				r.steps[len(r.steps)-1].output = strings.TrimSpace(line)
			}
		case block != "":
			body = append(body, line)
		}
		if strings.TrimSpace(line) != "" {
			prev = strings.TrimSpace(line)
		}
	}
	if len(r.steps) == 0 {
		t.Fatal(`docs/kubectl-persona.md has no "## A real install, step by step" section with commands`)
	}
	return r
}

// shellWords splits a kubectl command line: single-quoted words and one
// trailing `> FILE` redirect, which is all the recipe uses.
func shellWords(t *testing.T, s string) (args []string, redirect string) {
	t.Helper()
	if before, after, ok := strings.Cut(s, " > "); ok {
		s, redirect = before, strings.TrimSpace(after)
	}
	var cur strings.Builder
	inWord, quoted := false, false
	for _, c := range s {
		switch {
		case c == '\'':
			quoted, inWord = !quoted, true
		case c == ' ' && !quoted:
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unterminated quote in %q", s)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, redirect
}
