package playbook

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
)

// MaxJobNameLength is the longest Job name: Job names become the pods'
// job-name label value, which is limited to 63 characters.
const MaxJobNameLength = 63

// hashEncoding is lowercase base32 without padding: DNS-label safe.
var hashEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// JobName is the deterministic name of the Job that runs step for the given
// run keys (one per user in the Job, from EntryKey). The name is the lock that
// makes a launch happen once: every reconcile that decides the same launch
// computes the same name, and the API server refuses a second Job of that
// name. The readable prefix (playbook and step, truncated) is for humans; the
// 80-bit hash of the playbook UID, step and keys is what makes it unique.
//
// The hash input is unambiguous: every part is length-prefixed, so no id can
// make one batch hash like another (with parts joined by NUL, as before, user
// "a\x00b" hashed like the batch [a, b]). Names computed before that change
// differ from today's; a run in flight is unaffected, since the ledger records
// its Job's name before the Job is created and the planner re-creates and
// observes that recorded name, never a recomputed one.
func JobName(playbook, uid, step string, keys []string) string {
	h := sha256.New()
	h.Write(hashInput(append([]string{uid, step}, keys...)))
	sum := hashEncoding.EncodeToString(h.Sum(nil)[:10]) // 16 characters
	return label(playbook, 24) + "-" + label(step, 20) + "-" + sum
}

// hashInput encodes parts as a sequence of (8-byte big-endian length, bytes):
// a prefix-free code, so different sequences never encode alike.
func hashInput(parts []string) []byte {
	n := 0
	for _, p := range parts {
		n += 8 + len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = binary.BigEndian.AppendUint64(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out
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
// tell entries apart. The key is a tag (the policy) and its length-prefixed
// parts, so no user id can make one key equal another.
func EntryKey(once bool, userID, persona string, enteredAt time.Time) string {
	if once {
		return "O" + string(hashInput([]string{userID}))
	}
	return "E" + string(hashInput([]string{userID, persona, enteredAt.UTC().Format(time.RFC3339)}))
}
