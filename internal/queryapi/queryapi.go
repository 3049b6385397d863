// Package queryapi is the query endpoint's wire API: the paths, parameters and
// JSON documents the manager's endpoint (internal/query) returns and the
// kubectl persona plugin reads. It is a leaf: it depends only on api/ (and the
// standard library), has no behaviour, and so the pure packages that fill its
// documents (internal/explain, internal/preview) and the plugin binary import
// it without linking the server.
package queryapi

import (
	"time"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// Paths of the endpoint, under https://host:port. Both carry the namespace and
// persona name, which is what each request is authorized for.
const (
	// ExplainPath is GET …/explain?user=ID: why a user is or is not a member.
	ExplainPath = "/v1/namespaces/%s/personas/%s/explain"
	// PreviewPath is POST …/preview with a Persona as the JSON body: a dry run.
	PreviewPath = "/v1/namespaces/%s/personas/%s/preview"
	// ErasePath is POST …/erase with an EraseRequest as the JSON body: the
	// right to erasure of one user of the namespace's event store. The user
	// id is in the body, not the path, so it is in no access log.
	ErasePath = "/v1/namespaces/%s/erase"
)

// EraseRequest names the user to erase.
type EraseRequest struct {
	UserID string `json:"userId"`
}

// Erasure is the answer to an erasure: the user's stored events and traits
// are deleted (committed) and the user's rows in the namespace's Events
// sources are being removed from the profile store (within about a second;
// the personas then drop the user).
type Erasure struct {
	Namespace string `json:"namespace"`
	UserID    string `json:"userId"`
	// Events is how many stored calls of the user were deleted.
	Events int64 `json:"events"`
}

// Query parameters.
const (
	// UserParam names the user to explain.
	UserParam = "user"
	// SampleParam bounds the member ids a preview lists (each of the sample,
	// entered and exited lists).
	SampleParam = "sample"
)

// DefaultSample and MaxSample bound SampleParam.
const (
	DefaultSample = 10
	MaxSample     = 1000
)

// Explain answers "is this user a member, and why".
type Explain struct {
	Namespace string    `json:"namespace"`
	Persona   string    `json:"persona"`
	User      string    `json:"user"`
	Account   string    `json:"account,omitempty"`
	Now       time.Time `json:"now"`
	Rule      string    `json:"rule"`
	// Match is the rule's verdict for the user now, computed exactly as the
	// Persona controller computes it.
	Match bool `json:"match"`
	// Error is why the evaluation failed (then the user is not a member), e.g.
	// an attribute the profile lacks.
	Error string `json:"error,omitempty"`
	// Recorded is the user's entry in the persona's membership slices: what
	// the controller last wrote. Nil when the user is not recorded as a member.
	Recorded *Member `json:"recorded,omitempty"`
	// Attributes are the user and account attributes the rule reads.
	Attributes []Attribute `json:"attributes"`
	// Tree is the rule, sub-expression by sub-expression, with values.
	Tree Node `json:"tree"`
	// Warnings are notes about the explanation itself.
	Warnings []string `json:"warnings,omitempty"`
}

// Attribute is one attribute the rule reads and the profile's value of it.
type Attribute struct {
	Name   string `json:"name"` // user.nps, account.tier
	Value  string `json:"value,omitempty"`
	Absent bool   `json:"absent,omitempty"`
}

// Node is one sub-expression of a rule and what it evaluated to. && / || / !
// and ternaries have Children; other expressions are leaves whose Operands show
// the values they compared.
type Node struct {
	Expression string `json:"expression"`
	// Operator is "&&", "||", "!" or "?:" for a node with Children.
	Operator string `json:"operator,omitempty"`
	// Value is the CEL value rendered as a literal ("enterprise" is quoted),
	// empty when the expression failed.
	Value string `json:"value,omitempty"`
	// Absent: the expression failed because it reads an attribute the profile
	// lacks.
	Absent bool `json:"absent,omitempty"`
	// Error is the evaluation error, when it failed otherwise.
	Error    string    `json:"error,omitempty"`
	Operands []Operand `json:"operands,omitempty"`
	Children []Node    `json:"children,omitempty"`
}

// Operand is a non-constant operand of a leaf and its value.
type Operand struct {
	Expression string `json:"expression"`
	Value      string `json:"value,omitempty"`
	Absent     bool   `json:"absent,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Member is one member as recorded in a PersonaMembership slice.
type Member struct {
	UserID    string    `json:"userId"`
	AccountID string    `json:"accountId,omitempty"`
	EnteredAt time.Time `json:"enteredAt"`
}

// Preview is the dry run of a Persona.
type Preview struct {
	Namespace string    `json:"namespace"`
	Persona   string    `json:"persona"`
	Now       time.Time `json:"now"`
	// Exists: a live Persona of that name exists; Entered and Exited compare
	// with its membership slices (otherwise everyone enters).
	Exists bool `json:"exists"`
	// Sources are the DataSources evaluated.
	Sources []string `json:"sources"`
	// Members is how many users the rule matches.
	Members int `json:"members"`
	// Sample are the first member ids, sorted.
	Sample []string `json:"sample"`
	// EvaluationErrors counts profiles whose evaluation failed (non-members).
	EvaluationErrors int64                    `json:"evaluationErrors"`
	Entered          Change                   `json:"entered"`
	Exited           Change                   `json:"exited"`
	Insights         []v1alpha1.InsightResult `json:"insights,omitempty"`
	Playbooks        []PlaybookLaunch         `json:"playbooks"`
}

// Change is who would enter (or exit): a count and the first ids, sorted.
type Change struct {
	Count  int      `json:"count"`
	Sample []string `json:"sample"`
}

// PlaybookLaunch is a Playbook whose trigger matches the previewed persona (or
// matched the live one) and how many users it would launch for.
type PlaybookLaunch struct {
	Name    string                `json:"name"`
	Trigger v1alpha1.TriggerEvent `json:"trigger"`
	// By says how the trigger selects the persona: personaRef, personaSelector
	// or stage.
	By string `json:"by"`
	// Users is how many users it would start a run for.
	Users int `json:"users"`
	// Skipped are entering or exiting users it would not start a run for
	// (reentryPolicy Once and an earlier run, a run in progress, a cooldown,
	// an Exit playbook that never armed the user).
	Skipped int `json:"skipped,omitempty"`
	// StopsMatching: it matches the live persona but not the previewed one, so
	// every member armed by an Exit playbook would count as exited.
	StopsMatching bool `json:"stopsMatching,omitempty"`
	Suspended     bool `json:"suspended,omitempty"`
	// Error: the trigger could not be evaluated (an invalid personaSelector);
	// the Playbook controller launches nothing for it either.
	Error string `json:"error,omitempty"`
}
