package v1alpha1_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKubectlExplain checks that the field comments reach users through the
// API server's published schema, as `kubectl explain` shows them.
func TestKubectlExplain(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := env.Kubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		field string
		want  []string
	}{
		{"nodeippool", []string{"pool of Azure VNet IP addresses of one node", "spec", "status"}},
		{"nodeippool.spec", []string{"nicID", "requestedIPCount", "ipsNotInUse", "warm buffer"}},
		{"nodeippool.spec.ipsNotInUse", []string{"promises never to hand out again"}},
		{"nodeippool.status.conditions", []string{"LimitReached", "AttachmentsApplied"}},
		{"nodeippool.spec.attachments", []string{"network.nicpool.io annotations", "same NIC write", "detach"}},
		{"nodeippool.spec.attachments.publicIPAddress", []string{"create", "the pod's outbound traffic"}},
		{"nodeippool.status.attachments.state", []string{"Applied", "Refused", "Detaching"}},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			var out []byte
			var err error
			// The API server publishes a new CRD's OpenAPI schema a few
			// seconds after the CRD is established.
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
				out, err = exec.Command(filepath.Join(env.AssetsDir, "kubectl"), "--kubeconfig", kubeconfig, "explain", tc.field).CombinedOutput()
				if err == nil || time.Now().After(deadline) {
					break
				}
			}
			if err != nil {
				t.Fatalf("kubectl explain %s: %v\n%s", tc.field, err, out)
			}
			t.Logf("kubectl explain %s:\n%s", tc.field, out)
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("kubectl explain %s lacks %q:\n%s", tc.field, w, out)
				}
			}
		})
	}
}
