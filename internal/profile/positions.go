package profile

// positions hands out each user entry's position in snapshots: stable while
// the entry exists, so that a snapshot is brought up to date by patching the
// positions of the users that changed instead of being rebuilt from the map
// (snapshot.go). A freed position is reused, so snapshots are as long as the
// most users the namespace held at once, not as all it ever held.
type positions struct {
	next int32
	free []int32
	// vacated are the positions freed since the last change was journaled:
	// a snapshot derived across that change empties them (snapshot.go).
	vacated []int32
}

// take returns a free position; nil positions (accounts) hand out -1.
func (p *positions) take() int32 {
	if p == nil {
		return -1
	}
	if n := len(p.free); n > 0 {
		i := p.free[n-1]
		p.free = p.free[:n-1]
		return i
	}
	p.next++
	return p.next - 1
}

// put frees a position.
func (p *positions) put(i int32) {
	if p != nil && i >= 0 {
		p.free = append(p.free, i)
		p.vacated = append(p.vacated, i)
	}
}

// drain returns the positions vacated since the last drain.
func (p *positions) drain() []int32 {
	v := p.vacated
	p.vacated = nil
	return v
}

// size is one more than the highest position handed out.
func (p *positions) size() int { return int(p.next) }
