// Package membership computes who entered and exited a persona and plans the
// writes that store its members in slice objects, the way the EndpointSlice
// controller does: members are keyed by user id, existing slices are edited in
// place, slices already being written are topped up first, nothing is
// rebalanced for tidiness, so writes scale with churn and not with size.
package membership
