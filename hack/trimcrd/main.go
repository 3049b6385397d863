// Command trimcrd removes field descriptions below chosen schema paths of generated
// CRDs. It runs after controller-gen in `make manifests`.
//
// Why: a Playbook step embeds a whole batch/v1 JobTemplateSpec. With the upstream
// descriptions of every Pod field the Playbook CRD is ~800 KB, which breaks
// client-side `kubectl apply` (the last-applied annotation is capped at 256 KiB) and
// Argo CD without server-side apply. The schema (and so admission validation) stays
// whole; only the descriptions that `kubectl explain job.spec` already shows go.
//
// Usage: trimcrd FILE PATH...   PATH is dot-separated under spec.versions[*]'s
// openAPIV3Schema, with "[]" for array items, e.g. spec.steps[].jobTemplate.spec
package main

import (
	"fmt"
	"os"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: trimcrd FILE PATH...")
		os.Exit(2)
	}
	if err := trimFile(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "trimcrd:", err)
		os.Exit(1)
	}
}

func trimFile(file string, paths []string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for i := range crd.Spec.Versions {
		v := &crd.Spec.Versions[i]
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		for _, p := range paths {
			node, err := walk(v.Schema.OpenAPIV3Schema, p)
			if err != nil {
				return fmt.Errorf("%s version %s: %w", file, v.Name, err)
			}
			for name, child := range node.Properties {
				stripDescriptions(&child)
				node.Properties[name] = child
			}
		}
	}
	out, err := yaml.Marshal(&crd)
	if err != nil {
		return err
	}
	// Keep controller-gen's document header and drop the empty status it can't own.
	out = []byte(strings.Replace(string(out), "status:\n  acceptedNames:\n    kind: \"\"\n    plural: \"\"\n  conditions: null\n  storedVersions: null\n", "", 1))
	return os.WriteFile(file, append([]byte("---\n"), out...), 0o644)
}

// walk follows a dot path such as spec.steps[].jobTemplate.spec.
func walk(s *apiextensionsv1.JSONSchemaProps, path string) (*apiextensionsv1.JSONSchemaProps, error) {
	for _, part := range strings.Split(path, ".") {
		items := strings.HasSuffix(part, "[]")
		name := strings.TrimSuffix(part, "[]")
		child, ok := s.Properties[name]
		if !ok {
			return nil, fmt.Errorf("path %q: no property %q", path, name)
		}
		// Properties holds values, but their own maps and Items are shared, so
		// edits below this copy reach the CRD.
		s = &child
		if items {
			if s.Items == nil || s.Items.Schema == nil {
				return nil, fmt.Errorf("path %q: %q is not an array", path, name)
			}
			s = s.Items.Schema
		}
	}
	return s, nil
}

func stripDescriptions(s *apiextensionsv1.JSONSchemaProps) {
	s.Description = ""
	for k, p := range s.Properties {
		stripDescriptions(&p)
		s.Properties[k] = p
	}
	if s.Items != nil {
		if s.Items.Schema != nil {
			stripDescriptions(s.Items.Schema)
		}
		for i := range s.Items.JSONSchemas {
			stripDescriptions(&s.Items.JSONSchemas[i])
		}
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		stripDescriptions(s.AdditionalProperties.Schema)
	}
	for _, list := range [][]apiextensionsv1.JSONSchemaProps{s.AllOf, s.AnyOf, s.OneOf} {
		for i := range list {
			stripDescriptions(&list[i])
		}
	}
}
