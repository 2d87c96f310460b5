package install_test

import (
	"strconv"
	"strings"
	"testing"
)

// TestChartRejectsBadValues renders the chart with one bad value at a time
// and checks that helm refuses it with a message naming the value and what is
// wrong, and that good values render.
func TestChartRejectsBadValues(t *testing.T) {
	helm := helmPath(t)
	tests := []struct {
		name    string
		set     []string
		wantErr []string // substrings of helm's error; none: renders
	}{
		{"defaults", nil, nil},
		{"good values", []string{"perVMLimit=30", "perVNetLimit=1000", "nonMasqueradeCIDRs={10.1.0.0/16,192.168.0.0/24}",
			"managedIdentity.clientID=11111111-2222-3333-4444-555555555555", "warmPool.maxIPs=30", "serviceMonitor.enabled=true"}, nil},
		{"perVMLimit above Azure's", []string{"perVMLimit=300"}, []string{"/perVMLimit", "maximum", "250"}},
		{"perVMLimit zero", []string{"perVMLimit=0"}, []string{"/perVMLimit", "minimum"}},
		{"perVNetLimit above 16000", []string{"perVNetLimit=16001"}, []string{"/perVNetLimit", "maximum"}},
		{"CIDR prefix too long", []string{"nonMasqueradeCIDRs={10.0.0.0/33}"}, []string{"/nonMasqueradeCIDRs/0", "10.0.0.0/33", "pattern"}},
		{"CIDR octet too big", []string{"nonMasqueradeCIDRs={10.0.256.0/24}"}, []string{"/nonMasqueradeCIDRs/0", "pattern"}},
		{"CIDR without prefix", []string{"nonMasqueradeCIDRs={10.0.0.0}"}, []string{"/nonMasqueradeCIDRs/0", "pattern"}},
		{"unknown top-level key", []string{"perVmLimit=10"}, []string{"additional properties", "perVmLimit"}},
		{"unknown nested key", []string{"agent.privileged=true"}, []string{"/agent", "privileged"}},
		{"client ID not a GUID", []string{"workloadIdentity.clientID=my-app"}, []string{"/workloadIdentity/clientID", "pattern"}},
		{"unknown cloud", []string{"azure.cloud=AzurePublicCloud"}, []string{"/azure/cloud"}},
		{"plain-http ARM endpoint", []string{"azure.armEndpoint=http://arm.example"}, []string{"/azure/armEndpoint"}},
		{"two identities", []string{"workloadIdentity.clientID=11111111-2222-3333-4444-555555555555",
			"managedIdentity.clientID=11111111-2222-3333-4444-555555555555"}, []string{"not both"}},
		{"maxIPs above perVMLimit", []string{"perVMLimit=50", "warmPool.maxIPs=60"}, []string{"warmPool.maxIPs (60) must not exceed perVMLimit (50)"}},
		{"no warm and no minimum IPs", []string{"warmPool.warmIPTarget=0", "warmPool.minIPTarget=0"}, []string{"both 0"}},
		{"minimum above maxIPs", []string{"warmPool.minIPTarget=40", "warmPool.maxIPs=30"}, []string{"warmPool.minIPTarget (40) must not exceed warmPool.maxIPs (30)"}},
		{"extra arg not a flag", []string{"agent.extraArgs={rm -rf}"}, []string{"/agent/extraArgs/0"}},
		{"bad cooldown", []string{"warmPool.releaseCooldown=soon"}, []string{"/warmPool/releaseCooldown"}},
		{"too many operator replicas", []string{"operator.replicas=0"}, []string{"/operator/replicas"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"template", "nicpool", "charts/nicpool", "--namespace", namespace}
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			r := run(t, nil, helm, args...)
			if len(tt.wantErr) == 0 {
				if r.err != nil {
					t.Fatalf("helm template refused good values: %v\n%s", r.err, r.stderr)
				}
				return
			}
			if r.err == nil {
				t.Fatalf("helm template accepted %v, want an error saying %q", tt.set, tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("helm's error does not say %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

// TestServiceMonitorOnlyWhenEnabled checks that the chart creates a
// ServiceMonitor, a kind that exists only with the Prometheus Operator, only
// when asked to.
func TestServiceMonitorOnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		t.Run("enabled="+strconv.FormatBool(enabled), func(t *testing.T) {
			ms := parse(t, renderHelm(t, "nicpool", namespace, "--set", "serviceMonitor.enabled="+strconv.FormatBool(enabled)))
			n := 0
			for _, m := range ms {
				if m.GetKind() == "ServiceMonitor" {
					n++
					if m.GetAPIVersion() != "monitoring.coreos.com/v1" {
						t.Errorf("ServiceMonitor apiVersion = %s", m.GetAPIVersion())
					}
				}
			}
			want := 0
			if enabled {
				want = 1
			}
			if n != want {
				t.Errorf("rendered %d ServiceMonitors, want %d", n, want)
			}
		})
	}
}

// TestChartCopiesAreCurrent fails when the chart's copies of the generated
// CRDs, ClusterRoles and policy rules differ from config/: run
// hack/sync-chart-crds.sh after `make manifests`.
func TestChartCopiesAreCurrent(t *testing.T) {
	r := run(t, nil, "bash", "hack/sync-chart-crds.sh", "--check")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
}

// TestChartLints runs `helm lint --strict`, which also renders every template.
func TestChartLints(t *testing.T) {
	mustRun(t, nil, helmPath(t), "lint", "--strict", "charts/nicpool")
}
