package playbook

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"time"
)

// MaxJobNameLength is the longest Job name: Job names become the pods'
// job-name label value, which is limited to 63 characters.
const MaxJobNameLength = 63

// hashEncoding is lowercase base32 without padding: DNS-label safe.
var hashEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// JobName is the deterministic name of the Job that runs step for the given
// run keys (one per user in the Job). The name is the lock that makes a launch
// happen once: every reconcile that decides the same launch computes the same
// name, and the API server refuses a second Job of that name. The readable
// prefix (playbook and step, truncated) is for humans; the 80-bit hash of the
// playbook UID, step and keys is what makes it unique.
func JobName(playbook, uid, step string, keys []string) string {
	h := sha256.New()
	for _, part := range append([]string{uid, step}, keys...) {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	sum := hashEncoding.EncodeToString(h.Sum(nil)[:10]) // 16 characters
	return label(playbook, 24) + "-" + label(step, 20) + "-" + sum
}

// label turns s into at most n characters of a DNS label: lowercase
// alphanumerics and '-', not starting or ending with '-'. Playbook names are
// DNS subdomains, so dots become dashes.
func label(s string, n int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() == n {
			break
		}
	}
	out := strings.Trim(b.String(), "-")
	if out == "" {
		return "x"
	}
	return out
}

// EntryKey identifies the entry a run belongs to. Under the Once policy every
// entry of a user is the same entry, so a user who leaves and comes back can
// never compute a new Job name; under EveryEntry the persona and entry time
// tell entries apart.
func EntryKey(once bool, userID, persona string, enteredAt time.Time) string {
	if once {
		return userID
	}
	return userID + "\x00" + persona + "\x00" + enteredAt.UTC().Format(time.RFC3339)
}
