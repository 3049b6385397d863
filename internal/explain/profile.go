package explain

import (
	"github.com/google/cel-go/common/types/ref"

	"github.com/usersuccess/persona-operator/internal/profile"
)

// FromProfile reads the subject of an explanation from a merged profile: every
// attribute of the schema the profile (and its account) has a value for.
func FromProfile(u profile.User, s profile.Schema) Subject {
	subj := Subject{User: values(s.User, u.Get)}
	if a, ok := u.Account(); ok {
		subj.Account = values(s.Account, a.Get)
	}
	return subj
}

func values[T any](names map[string]T, get func(string) (any, bool)) map[string]ref.Val {
	out := make(map[string]ref.Val, len(names))
	for n := range names {
		if v, ok := get(n); ok {
			if rv, isVal := v.(ref.Val); isVal && rv != nil {
				out[n] = rv
			}
		}
	}
	return out
}
