package main

import (
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

func schema() *apiextensionsv1.JSONSchemaProps {
	leaf := func(d string) apiextensionsv1.JSONSchemaProps {
		return apiextensionsv1.JSONSchemaProps{Type: "string", Description: d}
	}
	return &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"spec": {Type: "object", Description: "spec", Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"steps": {Type: "array", Description: "steps", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{
				Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"name": leaf("step name"),
					"jobTemplate": {Type: "object", Description: "job template", Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Description: "job spec", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"backoffLimit": leaf("retries"),
							"template": {Type: "object", Description: "pod template", Properties: map[string]apiextensionsv1.JSONSchemaProps{
								"containers": {Type: "array", Description: "containers", Items: &apiextensionsv1.JSONSchemaPropsOrArray{
									Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", Description: "container", Properties: map[string]apiextensionsv1.JSONSchemaProps{
										"image": leaf("image"),
									}},
								}},
							}},
						}},
					}},
				},
			}}},
		}},
	}}
}

func TestWalkAndStrip(t *testing.T) {
	s := schema()
	node, err := walk(s, "spec.steps[].jobTemplate.spec")
	if err != nil {
		t.Fatal(err)
	}
	for name, child := range node.Properties {
		stripDescriptions(&child)
		node.Properties[name] = child
	}
	steps := s.Properties["spec"].Properties["steps"]
	item := steps.Items.Schema
	jobSpec := item.Properties["jobTemplate"].Properties["spec"]
	tmpl := jobSpec.Properties["template"]
	checks := []struct {
		what, got, want string
	}{
		{"spec description kept", s.Properties["spec"].Description, "spec"},
		{"steps description kept", steps.Description, "steps"},
		{"sibling field kept", item.Properties["name"].Description, "step name"},
		{"jobTemplate description kept", item.Properties["jobTemplate"].Description, "job template"},
		{"the trimmed node's own description kept", jobSpec.Description, "job spec"},
		{"child stripped", jobSpec.Properties["backoffLimit"].Description, ""},
		{"nested child stripped", tmpl.Description, ""},
		{"array item stripped", tmpl.Properties["containers"].Items.Schema.Description, ""},
		{"array item field stripped", tmpl.Properties["containers"].Items.Schema.Properties["image"].Description, ""},
		{"types kept", tmpl.Properties["containers"].Items.Schema.Properties["image"].Type, "string"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}
}

func TestWalkErrors(t *testing.T) {
	for _, path := range []string{"spec.nope", "spec.steps[].name[]", "status"} {
		if _, err := walk(schema(), path); err == nil {
			t.Errorf("walk(%q): want an error", path)
		}
	}
}
