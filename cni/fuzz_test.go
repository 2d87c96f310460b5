package cni

import (
	"errors"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// FuzzParseConfig feeds arbitrary stdin to the configuration parser: it must
// never panic, must fail only with a CNI error, and what it accepts must be
// within bounds. Seeds live in testdata/fuzz/FuzzParseConfig.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","type":"nicpool","mtu":1500}`))
	f.Fuzz(func(t *testing.T, stdin []byte) {
		conf, err := ParseConfig(stdin)
		if err != nil {
			var cniErr *types.Error
			if !errors.As(err, &cniErr) || cniErr.Msg == "" {
				t.Fatalf("error %v (%T) is not a CNI error with a message", err, err)
			}
			return
		}
		if conf.TimeoutSeconds < 1 || conf.TimeoutSeconds > MaxTimeoutSeconds {
			t.Fatalf("accepted timeoutSeconds %d", conf.TimeoutSeconds)
		}
		if conf.MTU != 0 && (conf.MTU < minMTU || conf.MTU > maxMTU) {
			t.Fatalf("accepted mtu %d", conf.MTU)
		}
		if conf.AgentSocket == "" || conf.Name == "" || conf.CNIVersion == "" {
			t.Fatalf("accepted incomplete configuration %+v", conf)
		}
		_ = conf.parsePrevResult()
		_, _ = parsePodArgs(string(stdin))
	})
}
