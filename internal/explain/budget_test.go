package explain

import (
	"runtime"
	"strings"
	"testing"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// Explain evaluates in the rule language of the controller, with its size
// guards (rule/guards.go) and a runtime cost limit: issue 13's rule over a
// 4 MiB value fails before building its 256 MiB string, and a concatenation
// chain stops on the cost limit (before: 1.5 GB allocated, no error).
func TestExplainBudgets(t *testing.T) {
	big := map[string]ref.Val{"id": types.String("u1"), "role": types.String(strings.Repeat("a", 4<<20))}
	for _, tt := range []struct{ rule, want string }{
		{`user.role.replace("a", "` + strings.Repeat("a", 64) + `").size() > 0`, "replace would build"},
		{`(user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role).size() > 0`, "costs more than the limit"},
		{`user.nps > 0 || (user.role + user.role + user.role + user.role + user.role + user.role + user.role + user.role).size() > 0`, "costs more than the limit"},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		res, err := Explain(tt.rule, schema, subject(big, acme), now)
		runtime.ReadMemStats(&after)
		if err != nil || res.Err == nil || !strings.Contains(res.Err.Error(), tt.want) {
			t.Errorf("%.40s…: error %v, evaluation error %.300v; want %q", tt.rule, err, res.Err, tt.want)
		}
		if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 64<<20 {
			t.Errorf("%.40s…: allocated %d bytes", tt.rule, allocated)
		} else {
			t.Logf("%.40s…: allocated %d bytes", tt.rule, allocated)
		}
	}
}
