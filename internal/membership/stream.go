package membership

import (
	"container/heap"
	"errors"
	"iter"
	"slices"
	"time"
)

// Row is one member as a query streams it: the user id and the account it
// joins through.
type Row struct {
	ID        string
	AccountID string
}

// Counts is how many users entered and exited, without listing them.
type Counts struct {
	Entered, Exited int
}

// Counts counts a change.
func (c Change) Counts() Counts { return Counts{Entered: len(c.Entered), Exited: len(c.Exited)} }

// StreamInput is what Stream merges: the stored slices, and the members now
// (Rows, in strictly increasing byte order of id).
type StreamInput struct {
	Stored      Stored
	Rows        iter.Seq2[Row, error]
	Now         time.Time
	MaxPerSlice int
	// SampleSize is how many of the smallest member ids to return.
	SampleSize int
	// Write makes one write, as soon as it is decided, or starts it: only a
	// Step marked After needs every earlier write made (Step.After). An
	// error stops the merge; the writes made before stand (each leaves a
	// consistent membership: see Stream). A step's members are never
	// changed after Write returns.
	Write func(Step) error
}

// Streamed is what a Stream changed.
type Streamed struct {
	Counts  Counts
	Members int
	Sample  []string
	Writes  int
}

// ErrUnordered is a member stream whose ids are not strictly increasing: a
// key returned twice, which the merge cannot resolve as a sync does (it keeps
// the last record, a stream has no such order).
var ErrUnordered = errors.New("member ids are not in strictly increasing byte order (a DataSource query returned a key twice)")

// Stream is Diff and PlanSlices for members that stream in id order (a
// database query), with memory bounded by about one slice instead of by the
// members: beyond the stored slices themselves (read, never copied) it keeps
// one bit per stored member, the entries not placed yet (fewer than a slice),
// and the account changes.
//
// It merges the rows with the stored members, taken in id order from every
// slice at once. A slice is decided once the rows pass its last member: its
// exits and account changes make it dirty, entries seen so far top it up if
// it has room, and it is written then (an update, or a delete once empty).
// Entries fill new slices as soon as a slice's worth has gathered; the rest
// tops up the clean slice with the least room that fits them all, else makes
// a new slice. As in PlanSlices, slices are never merged or rebalanced, a
// member stored twice keeps its earliest entry, and members beyond
// MaxPerSlice (a smaller sliceSize) move to other slices. Each write leaves a
// membership in which no staying member is missing: a slice that releases
// members to others is written last, after they have been placed (see Steps).
// Given the same stored members and rows it ends with the membership, counts
// and sample of Diff and PlanSlices.
func Stream(in StreamInput) (Streamed, error) {
	if in.MaxPerSlice < 1 {
		in.MaxPerSlice = 1
	}
	m := newMerger(in)
	var prev string
	first := true
	for row, err := range in.Rows {
		if err != nil {
			return m.out, err
		}
		if !first && row.ID <= prev {
			return m.out, ErrUnordered
		}
		first, prev = false, row.ID
		if err := m.row(row); err != nil {
			return m.out, err
		}
	}
	return m.finish()
}

// cursor is a slice's next stored member in id order.
type cursor struct {
	slice int
	pos   int // index into order (or the members when sorted)
}

type merger struct {
	in      StreamInput
	now     time.Time
	order   [][]int    // per slice: its members' indexes in id order; nil when already in order
	keep    [][]uint64 // per slice: one bit per stored member that stays in it
	kept    []int      // per slice: members kept so far
	dirty   []bool
	defer_  []bool // releases members to other slices: written last
	rank    []int  // per slice: its position in name order (ties between copies)
	account map[int]map[string]string
	heap    cursors
	pending []Member
	copies  []cursor // popID's result, reused
	after   bool     // the writes now wait for every earlier one (Step.After)
	out     Streamed
}

func newMerger(in StreamInput) *merger {
	n := in.Stored.Len()
	m := &merger{in: in, now: in.Now.UTC().Truncate(time.Second), // as Diff
		order: make([][]int, n), keep: make([][]uint64, n), kept: make([]int, n),
		dirty: make([]bool, n), defer_: make([]bool, n), rank: make([]int, n), account: map[int]map[string]string{}}
	byName := make([]int, n)
	for i := range byName {
		byName[i] = i
	}
	slices.SortFunc(byName, func(a, b int) int { return compareStrings(in.Stored.Name(a), in.Stored.Name(b)) })
	for r, i := range byName {
		m.rank[i] = r
	}
	m.heap = cursors{m: m}
	for i := range n {
		size := in.Stored.Size(i)
		m.keep[i] = make([]uint64, (size+63)/64)
		if !sortedSlice(in.Stored, i) {
			ord := make([]int, size)
			for j := range ord {
				ord[j] = j
			}
			slices.SortStableFunc(ord, func(a, b int) int {
				return compareStrings(in.Stored.At(i, a).UserID, in.Stored.At(i, b).UserID)
			})
			m.order[i] = ord
		}
		if size > 0 {
			m.heap.items = append(m.heap.items, cursor{slice: i})
		} else {
			m.dirty[i] = true // an empty slice takes entries or goes (finish)
		}
	}
	heap.Init(&m.heap)
	return m
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sortedSlice(s Stored, i int) bool {
	for j := 1; j < s.Size(i); j++ {
		if s.At(i, j).UserID < s.At(i, j-1).UserID {
			return false
		}
	}
	return true
}

// index is the member index of a cursor.
func (m *merger) index(c cursor) int {
	if ord := m.order[c.slice]; ord != nil {
		return ord[c.pos]
	}
	return c.pos
}

func (m *merger) idAt(c cursor) string { return m.in.Stored.At(c.slice, m.index(c)).UserID }

// row handles one member now: the stored members before it exit, its stored
// copies (if any) stay, else it enters.
func (m *merger) row(r Row) error {
	if err := m.advance(r.ID, true); err != nil {
		return err
	}
	m.out.Members++
	if len(m.out.Sample) < m.in.SampleSize {
		m.out.Sample = append(m.out.Sample, r.ID)
	}
	copies := m.popID(r.ID)
	if len(copies) == 0 {
		m.out.Counts.Entered++
		return m.place(Member{UserID: r.ID, AccountID: r.AccountID, EnteredAt: m.now})
	}
	best := copies[0]
	for _, c := range copies[1:] {
		a, b := m.in.Stored.At(c.slice, m.index(c)), m.in.Stored.At(best.slice, m.index(best))
		if a.EnteredAt.Before(b.EnteredAt) || a.EnteredAt.Equal(b.EnteredAt) && m.rank[c.slice] < m.rank[best.slice] {
			best = c
		}
	}
	for _, c := range copies {
		if c != best {
			m.dirty[c.slice] = true // a copy left by an interrupted write goes
		}
	}
	stored := m.in.Stored.At(best.slice, m.index(best))
	s := best.slice
	if m.kept[s] == m.in.MaxPerSlice {
		// Beyond a smaller sliceSize: moves, keeping its entry.
		m.dirty[s], m.defer_[s] = true, true
		stored.AccountID = r.AccountID
		if err := m.place(stored); err != nil {
			return err
		}
	} else {
		m.kept[s]++
		idx := m.index(best)
		m.keep[s][idx/64] |= 1 << (idx % 64)
		if stored.AccountID != r.AccountID {
			m.dirty[s] = true
			if m.account[s] == nil {
				m.account[s] = map[string]string{}
			}
			m.account[s][r.ID] = r.AccountID
		}
	}
	return m.complete(copies)
}

// advance makes every stored member before id (through id when inclusive is
// false: the end) exit, deciding the slices it passes.
func (m *merger) advance(id string, bounded bool) error {
	for m.heap.Len() > 0 {
		c := m.heap.items[0]
		uid := m.idAt(c)
		if bounded && uid >= id {
			return nil
		}
		copies := m.popID(uid)
		m.out.Counts.Exited++
		for _, c := range copies {
			m.dirty[c.slice] = true
		}
		if err := m.complete(copies); err != nil {
			return err
		}
	}
	return nil
}

// popID takes every stored copy of id off the heap (the cursors move on).
func (m *merger) popID(id string) []cursor {
	out := m.copies[:0]
	for m.heap.Len() > 0 {
		c := m.heap.items[0]
		if m.idAt(c) != id {
			break
		}
		out = append(out, c)
		if c.pos+1 < m.in.Stored.Size(c.slice) {
			m.heap.items[0].pos++
			heap.Fix(&m.heap, 0)
		} else {
			heap.Pop(&m.heap)
		}
	}
	m.copies = out
	return out
}

// complete decides the slices whose last member the cursors were.
func (m *merger) complete(cs []cursor) error {
	for _, c := range cs {
		if c.pos+1 == m.in.Stored.Size(c.slice) && !m.defer_[c.slice] {
			if err := m.decide(c.slice); err != nil {
				return err
			}
		}
	}
	return nil
}

// decide writes a slice the rows have passed: entries top it up if it has
// room, and it is written if anything changed.
func (m *merger) decide(s int) error {
	room := m.in.MaxPerSlice - m.kept[s]
	var add []Member
	if len(m.pending) > 0 && room > 0 {
		n := min(room, len(m.pending))
		add = m.pending[:n:n]
		m.pending = slices.Clone(m.pending[n:])
	}
	if !m.dirty[s] && len(add) == 0 {
		return nil
	}
	m.dirty[s] = true
	return m.writeSlice(s, add)
}

// writeSlice writes slice s as its kept members (with their new accounts)
// and add; deleted when that is nobody.
func (m *merger) writeSlice(s int, add []Member) error {
	if m.kept[s]+len(add) == 0 {
		return m.write(Step{Slice: Slice{Name: m.in.Stored.Name(s)}, Delete: true})
	}
	members := make([]Member, 0, m.kept[s]+len(add))
	for j := range m.in.Stored.Size(s) {
		if m.keep[s][j/64]&(1<<(j%64)) == 0 {
			continue
		}
		mem := m.in.Stored.At(s, j)
		if acct, ok := m.account[s][mem.UserID]; ok {
			mem.AccountID = acct
		}
		members = append(members, mem)
	}
	members = append(members, add...)
	sortMembers(members)
	delete(m.account, s)
	return m.write(Step{Slice: Slice{Name: m.in.Stored.Name(s), Members: members}})
}

func (m *merger) write(st Step) error {
	m.out.Writes++
	st.After = m.after
	return m.in.Write(st)
}

// place queues a member for a slice: a full slice's worth is created at once.
func (m *merger) place(mem Member) error {
	m.pending = append(m.pending, mem)
	if len(m.pending) < m.in.MaxPerSlice {
		return nil
	}
	st := Step{Slice: Slice{Members: m.pending}}
	m.pending = nil
	return m.write(st)
}

// finish makes the stored members left exit, places the last entries, and
// writes the slices that released members.
func (m *merger) finish() (Streamed, error) {
	if err := m.advance("", false); err != nil {
		return m.out, err
	}
	for s := range m.kept {
		if m.in.Stored.Size(s) == 0 {
			if err := m.decide(s); err != nil {
				return m.out, err
			}
		}
	}
	if len(m.pending) > 0 {
		if s := m.bestFit(len(m.pending)); s >= 0 {
			if err := m.writeSlice(s, m.pending); err != nil {
				return m.out, err
			}
		} else if err := m.write(Step{Slice: Slice{Members: m.pending}}); err != nil {
			return m.out, err
		}
		m.pending = nil
	}
	m.after = true // the members they release are placed by the writes before
	for s := range m.defer_ {
		if m.defer_[s] {
			if err := m.writeSlice(s, nil); err != nil {
				return m.out, err
			}
		}
	}
	return m.out, nil
}

// bestFit is the unwritten slice with the least room that fits n members
// (first in name order among equals), or -1.
func (m *merger) bestFit(n int) int {
	best, bestRoom := -1, m.in.MaxPerSlice+1
	for s := range m.kept {
		room := m.in.MaxPerSlice - m.kept[s]
		if m.dirty[s] || m.kept[s] == 0 || room < n {
			continue
		}
		if room < bestRoom || room == bestRoom && m.rank[s] < m.rank[best] {
			best, bestRoom = s, room
		}
	}
	return best
}

// cursors is a min-heap of slice cursors by id, then slice name.
type cursors struct {
	m     *merger
	items []cursor
}

func (h *cursors) Len() int { return len(h.items) }
func (h *cursors) Less(a, b int) bool {
	ia, ib := h.m.idAt(h.items[a]), h.m.idAt(h.items[b])
	if ia != ib {
		return ia < ib
	}
	return h.m.rank[h.items[a].slice] < h.m.rank[h.items[b].slice]
}
func (h *cursors) Swap(a, b int) { h.items[a], h.items[b] = h.items[b], h.items[a] }
func (h *cursors) Push(x any)    { h.items = append(h.items, x.(cursor)) }
func (h *cursors) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
