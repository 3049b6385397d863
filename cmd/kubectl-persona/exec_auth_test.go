package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/usersuccess/persona-operator/internal/query"
	"github.com/usersuccess/persona-operator/internal/query/querytest"
)

// TestExecPluginKubeconfig runs the plugin with a kubeconfig whose user is an
// exec credential plugin (as cloud providers' and OIDC login helpers are): a
// script that prints an ExecCredential with a ServiceAccount's token. Both the
// API server (members) and the query endpoint (explain) must get the token
// from the plugin.
func TestExecPluginKubeconfig(t *testing.T) {
	setup(t)
	ctx := context.Background()
	role, err := querytest.RepoClusterRole(ctx, suite.cs, filepath.Join("..", "..", "config", "rbac", "query_reader_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := querytest.ServiceAccountToken(ctx, suite.cs, suite.ns, "exec-analyst")
	if err != nil {
		t.Fatal(err)
	}
	if err := querytest.Bind(ctx, suite.cs, suite.ns, "exec-analyst", role, query.SubresourceExplain); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cred, err := json.Marshal(map[string]any{
		"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
		"status": map[string]any{"token": token},
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := filepath.Join(dir, "calls")
	script := filepath.Join(dir, "get-token")
	body := fmt.Sprintf("#!/bin/sh\necho called >> %q\ncat <<'EOF'\n%s\nEOF\n", calls, cred)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: suite.cfg.Host, CertificateAuthorityData: suite.cfg.CAData}
	cfg.AuthInfos["exec"] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
		Command: script, APIVersion: "client.authentication.k8s.io/v1", InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
	}}
	cfg.Contexts["exec"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "exec", Namespace: suite.ns}
	cfg.CurrentContext = "exec"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}

	explain := kubectlPersona(t, kubeconfig, "explain", "at-risk", "u-01")
	if explain.code != exitOK {
		t.Fatalf("explain with an exec plugin: exit %d: %s", explain.code, explain.stderr)
	}
	mustContain(t, "explain u-01", explain.stdout, "Rule now:  true: a member")
	if strings.Contains(explain.stdout+explain.stderr, token) {
		t.Error("the token printed")
	}
	members := kubectlPersona(t, kubeconfig, "members", "at-risk")
	if members.code != exitOK || !strings.Contains(members.stdout, "u-01") {
		t.Errorf("members with an exec plugin: exit %d: %s%s", members.code, members.stdout, members.stderr)
	}
	b, err := os.ReadFile(calls)
	if err != nil || strings.Count(string(b), "called") == 0 {
		t.Errorf("the exec plugin was not run (%v)", err)
	}
}
