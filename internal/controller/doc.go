// Package controller holds the reconcilers of persona-operator: DataSource,
// Persona and Playbook. Each reconcile gathers what its kind's decision needs
// (the object, the objects it owns, the profile store's view), calls that one
// decision in a pure package (internal/datasource, internal/persona,
// internal/playbook), and writes the result with as few API writes as it can.
// docs/architecture.md maps the layers and the data flow.
package controller
