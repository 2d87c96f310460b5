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
