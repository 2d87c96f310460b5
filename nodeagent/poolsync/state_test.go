package poolsync

import (
	"testing"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// TestStateOfCarriesTheFairShare: the operator's fair share reaches the
// allocator (nil when the status has none), so the agent gives surplus back.
func TestStateOfCarriesTheFairShare(t *testing.T) {
	np := &nicpoolv1.NodeIPPool{}
	if st := StateOf(np); st.FairShare != nil {
		t.Fatalf("FairShare = %d without status.fairShareIPCount, want nil", *st.FairShare)
	}
	share := int32(33)
	np.Status.FairShareIPCount = &share
	st := StateOf(np)
	if st.FairShare == nil || *st.FairShare != 33 {
		t.Fatalf("FairShare = %v, want 33", st.FairShare)
	}
}

// TestSettleWaitsOutAGrowingBurst: the spec write waits while the demand
// grows (a burst being bound, pauses included), so the whole burst goes in
// one write; it waits three debounces when nothing more arrives, never
// beyond maxWaits, and stops when the context ends.
func TestSettleWaitsOutAGrowingBurst(t *testing.T) {
	for _, tc := range []struct {
		name      string
		demands   []int // demand after each wait
		maxWaits  int
		stopAfter int // wait fails after this many waits (0: never)
		wantWaits int
		wantOK    bool
	}{
		{"single pod", []int{1, 1, 1, 1}, 30, 0, 3, true},
		{"burst being bound", []int{40, 120, 250, 250, 250, 250}, 30, 0, 6, true},
		{"burst with a pause", []int{40, 40, 120, 120, 250, 250, 250, 250}, 30, 0, 8, true},
		{"demand falling", []int{0, 0, 0}, 30, 0, 3, true},
		{"never settles", []int{2, 3, 4, 5, 6, 7, 8, 9}, 3, 0, 3, true},
		{"context ended", []int{40, 120, 250}, 30, 2, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			waits, next := 0, 0
			demand := func() int {
				d := tc.demands[min(next, len(tc.demands)-1)]
				next++
				return d
			}
			wait := func() bool {
				waits++
				return tc.stopAfter == 0 || waits <= tc.stopAfter
			}
			ok := settle(1, demand, wait, tc.maxWaits, 3)
			if ok != tc.wantOK || waits != tc.wantWaits {
				t.Fatalf("settle waited %d times and returned %v, want %d and %v", waits, ok, tc.wantWaits, tc.wantOK)
			}
		})
	}
}
