package httpsrc

import (
	"os"
	"testing"

	"github.com/usersuccess/persona-operator/internal/connector/netguard"
)

// TestMain lets the tests' servers on loopback be reached: the default policy
// denies loopback. The guard's own tests set policies explicitly (guard_test.go).
func TestMain(m *testing.M) {
	netguard.SetSources(netguard.Policy{})
	os.Exit(m.Run())
}
