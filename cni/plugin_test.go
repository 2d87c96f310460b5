package cni

import (
	"errors"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

func TestRecoveredTurnsPanicIntoCNIError(t *testing.T) {
	tests := []struct {
		name     string
		verb     func(*skel.CmdArgs) error
		wantCode uint
	}{
		{"panic", func(*skel.CmdArgs) error { panic("boom") }, types.ErrInternal},
		{"error passes through", func(*skel.CmdArgs) error { return types.NewError(types.ErrTryAgainLater, "later", "") }, types.ErrTryAgainLater},
		{"success", func(*skel.CmdArgs) error { return nil }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := recovered(tt.verb)(&skel.CmdArgs{})
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			var cniErr *types.Error
			if !errors.As(err, &cniErr) || cniErr.Code != tt.wantCode {
				t.Fatalf("got %v, want CNI error code %d", err, tt.wantCode)
			}
		})
	}
}
