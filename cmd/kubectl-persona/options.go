package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // exec and OIDC kubeconfigs for the API server
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// Environment defaults of the endpoint flags, for CI jobs.
const (
	envEndpoint = "PERSONA_QUERY_ENDPOINT"
	envCA       = "PERSONA_QUERY_CA"
)

// options are the flags every command shares.
type options struct {
	streams genericiooptions.IOStreams
	kube    *genericclioptions.ConfigFlags
	output  string
	// The query endpoint and how to trust it. The flags are prefixed because
	// kubectl's --certificate-authority and --insecure-skip-tls-verify already
	// mean the API server.
	endpoint         string
	endpointCA       string
	endpointInsecure bool
}

func newRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{streams: streams, kube: genericclioptions.NewConfigFlags(true)}
	cmd := &cobra.Command{
		Use:   "kubectl-persona",
		Short: "Inspect persona-operator personas: members, why a user is (not) a member, dry runs, insights",
		Long: `kubectl persona inspects persona-operator personas.

members and top read Persona and PersonaMembership objects through the API server.
explain and preview need the live profiles, which only the manager holds: they call its
query endpoint (--endpoint, or $PERSONA_QUERY_ENDPOINT) with the bearer token of your
kubeconfig; the endpoint authorizes get personas/explain or personas/preview.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl persona"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	o.kube.AddFlags(cmd.PersistentFlags())
	f := cmd.PersistentFlags()
	f.StringVarP(&o.output, "output", "o", "", "Output format: json, or empty for a table.")
	f.StringVar(&o.endpoint, "endpoint", os.Getenv(envEndpoint), "The manager's query endpoint, https://HOST:PORT (default $"+envEndpoint+").")
	f.StringVar(&o.endpointCA, "endpoint-certificate-authority", os.Getenv(envCA),
		"A PEM file of the CA that signed the endpoint's certificate (default $"+envCA+").")
	f.BoolVar(&o.endpointInsecure, "endpoint-insecure-skip-tls-verify", false,
		"Do not verify the endpoint's certificate. Your token is sent to whatever answers: for a port-forward to a self-signed manager only.")
	cmd.AddCommand(newMembersCommand(o), newExplainCommand(o), newPreviewCommand(o), newTopCommand(o))
	return cmd
}

// validate checks the shared flags.
func (o *options) validate() error {
	switch o.output {
	case "", "json":
		return nil
	}
	return fmt.Errorf("unknown output format %q: use -o json, or no -o for a table", o.output)
}

// namespace is the namespace of -n, or of the kubeconfig context, and
// whether it was given explicitly.
func (o *options) namespace() (string, bool, error) {
	ns, explicit, err := o.kube.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", false, fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	return ns, explicit, nil
}

// apiClient talks to the API server with the caller's kubeconfig. Its mapper
// knows persona-operator's kinds, so no discovery round trips are needed.
func (o *options) apiClient() (client.Client, error) {
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{v1alpha1.GroupVersion})
	for _, kind := range []string{"Persona", "PersonaMembership", "Playbook", "PlaybookProgress", "DataSource"} {
		mapper.Add(v1alpha1.GroupVersion.WithKind(kind), meta.RESTScopeNamespace)
	}
	return client.New(cfg, client.Options{Scheme: scheme, Mapper: mapper})
}

// nameArgs checks a command's n arguments with a message that says what is
// expected.
func nameArgs(usage string, n int) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			got := "none"
			if len(args) > 0 {
				got = strings.Join(quoteAll(args), " ")
			}
			return fmt.Errorf("expected %s; got %s", usage, got)
		}
		for _, a := range args {
			if strings.TrimSpace(a) == "" {
				return fmt.Errorf("expected %s: an argument is empty", usage)
			}
		}
		return nil
	}
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = fmt.Sprintf("%q", a)
	}
	return out
}
