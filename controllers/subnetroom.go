package controllers

import (
	"strings"
	"sync"
	"time"
)

// subnetRoomIntervals is how many limit-retry intervals the room learned from
// a refused write is trusted before a pass probes the subnet for more.
const subnetRoomIntervals = 4

// subnetRoom remembers, per subnet, how many more addresses a write may add:
// an upper bound learned when ARM refused a write as SubnetIsFull, so later
// passes neither re-send the refused write nor halve their way down to what
// fits again. nicpool's own writes keep the bound current (additions take
// from it, removals give back); addresses freed by anyone else are found by a
// probe of one address more than the bound once it is ttl old. Safe for
// concurrent use; the zero value is ready.
type subnetRoom struct {
	mu    sync.Mutex
	rooms map[string]*room // by lower-case subnet ID
}

// room is what one subnet is believed to hold free.
type room struct {
	free    int
	learned time.Time
}

// maxAdds returns the most additions a write to subnetID should make: -1
// when nothing is known, the remembered bound while it is younger than ttl,
// one more than it (a probe) after.
func (s *subnetRoom) maxAdds(subnetID string, now time.Time, ttl time.Duration) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[strings.ToLower(subnetID)]
	if r == nil {
		return -1
	}
	if now.Sub(r.learned) >= ttl {
		return r.free + 1
	}
	return r.free
}

// refused records that ARM refused a write adding adds addresses to subnetID
// because the subnet is full: it holds fewer than adds.
func (s *subnetRoom) refused(subnetID string, adds int, now time.Time) {
	if adds <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms == nil {
		s.rooms = map[string]*room{}
	}
	key := strings.ToLower(subnetID)
	r := s.rooms[key]
	if r == nil {
		r = &room{free: adds - 1}
		s.rooms[key] = r
	}
	r.free, r.learned = min(r.free, adds-1), now
}

// wrote records a successful write that added adds and removed removes
// addresses of subnetID. A write that added more than the bound proves the
// bound stale (someone freed addresses): it is forgotten, and the next pass
// asks for all it wants again.
func (s *subnetRoom) wrote(subnetID string, adds, removes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(subnetID)
	r := s.rooms[key]
	if r == nil {
		return
	}
	if adds > r.free {
		delete(s.rooms, key)
		return
	}
	r.free += removes - adds
}
