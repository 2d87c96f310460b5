package controllers

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/tools/events"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/azure"
)

// TestEmitEvents: a NIC found Failed, its repair, and ARM failures each get
// one Event reason, none twice.
func TestEmitEvents(t *testing.T) {
	opFailed := fmt.Errorf("update nic x: %w", azure.ErrOperationFailed)
	tests := []struct {
		name string
		o    outcome
		want []string
	}{
		{name: "quiet pass", o: outcome{}, want: nil},
		{name: "found failed and repaired", o: outcome{failedBy: failedByRead, repair: repairSucceeded}, want: []string{ReasonProvisioningFailed, "NICRepaired"}},
		{name: "own write failed, repair failed", o: outcome{failedBy: failedByWrite, repair: repairFailed, nicFailed: true, armErr: opFailed, armKind: azure.KindOperationFailed},
			want: []string{ReasonProvisioningFailed}},
		{name: "release write failed (finalizer path)", o: outcome{armErr: opFailed, armKind: azure.KindOperationFailed}, want: []string{"ARMOperationFailed"}},
		{name: "write still running", o: outcome{armErr: errors.New("pending"), armKind: azure.KindPending}, want: nil},
		{name: "throttled", o: outcome{armErr: errors.New("429"), armKind: azure.KindThrottled}, want: []string{"ARMThrottled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := events.NewFakeRecorder(10)
			r := &PoolReconciler{Recorder: rec}
			pool := &nicpoolv1.NodeIPPool{}
			pool.Name = "p"
			r.emitEvents(pool, "", &tt.o)
			close(rec.Events)
			var got []string
			for e := range rec.Events {
				got = append(got, strings.Fields(e)[1])
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("event reasons = %v, want %v", got, tt.want)
			}
		})
	}
}
