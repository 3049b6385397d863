package membership

import (
	"unique"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// InternAccounts makes the account ids of a slice's members canonical
// strings (unique.Make), so that the cached slices hold one copy of each
// account id, not one per member: a million members of a hundred thousand
// accounts otherwise keep a million copies (about 16 bytes each) decoded from
// JSON. User ids are left alone: each appears in a few slices at most, and an
// entry in unique's map costs more than the copies it would save.
func InternAccounts(m *v1alpha1.PersonaMembership) {
	for i := range m.Members {
		if id := m.Members[i].AccountID; id != "" {
			m.Members[i].AccountID = unique.Make(id).Value()
		}
	}
}
