// Package query serves the manager's query endpoint: explanations and previews
// of personas over the live profile store, which lives only in the manager's
// memory. Every request is authenticated (TokenReview of its bearer token) and
// authorized (SubjectAccessReview of get personas/explain or personas/preview
// in its namespace) by the API server; there is no other way in.
package query
