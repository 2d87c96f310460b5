package cni

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		name     string
		prepare  func(tb *testbed)
		wantCode uint // 0 means success
	}{
		{"agent ready", func(*testbed) {}, 0},
		{"agent not ready", func(tb *testbed) { tb.agent.SetReady(false, "no ip in pool") }, types.ErrPluginNotAvailable},
		{"agent down", func(tb *testbed) { _ = tb.agent.Close() }, types.ErrPluginNotAvailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTestbed(t, testPoolA)
			tt.prepare(tb)
			err := tb.nodeErr(func() error { return tb.cni.GetStatusNetworkList(context.Background(), tb.confList("1.1.0")) })
			assertCode(t, err, tt.wantCode)
		})
	}
}

// assertCode checks that err is a CNI error with code want (nil when 0).
func assertCode(t *testing.T, err error, want uint) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("got %v, want success", err)
		}
		return
	}
	var cniErr *types.Error
	if !errors.As(err, &cniErr) {
		t.Fatalf("got %v (%T), want CNI error code %d", err, err, want)
	}
	if cniErr.Code != want {
		t.Fatalf("got code %d (%v), want %d", cniErr.Code, cniErr, want)
	}
}

func TestAddWithAgentDownFailsBounded(t *testing.T) {
	tb := newTestbed(t, testPoolA)
	_ = tb.agent.Close()
	pod := newNS(t)
	_, err := tb.add(tb.confList("1.1.0"), runtimeConf("ctr-down", pod))
	assertCode(t, err, types.ErrTryAgainLater)
	if links := tb.npLinks(); len(links) != 0 {
		t.Errorf("host veths %v left after failed ADD", links)
	}
}

func TestAddTimeoutReleasesLateAllocation(t *testing.T) {
	tb := newTestbed(t, testPoolA)
	tb.agent.DelayAllocate(1500 * time.Millisecond)
	list := tb.confList("1.1.0")
	plugin, err := libcni.InjectConf(list.Plugins[0], map[string]any{"timeoutSeconds": 1})
	if err != nil {
		t.Fatal(err)
	}
	list.Plugins[0] = plugin
	pod := newNS(t)
	_, err = tb.add(list, runtimeConf("ctr-slow", pod))
	assertCode(t, err, types.ErrTryAgainLater)
	if held := tb.agent.Held(); len(held) != 0 {
		t.Errorf("allocation the agent made after the plugin gave up was not released: %v", held)
	}
	if links := tb.npLinks(); len(links) != 0 {
		t.Errorf("host veths %v left", links)
	}
}
