// Package rule compiles Persona rules and insight expressions — CEL over `user`,
// `account` and `now` — against a namespace's declared attribute schema, and
// evaluates them over profiles without allocating per profile.
//
// `user` and `account` are typed objects whose fields are the declared
// attributes, so an unknown attribute or a type mismatch (comparing a timestamp
// with a string) is a compile error with its position. A field a profile lacks
// is absent: has(user.nps) is false and reading it is an evaluation error, which
// makes the profile a non-member.
package rule
