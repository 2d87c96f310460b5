package install_test

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/nicpool/nicpool/controllers"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/nodeagent"
)

// TestAgentArgsParse feeds the agent's rendered command line (kustomize and
// Helm, with the chart's values varied) to the agent's own flag set and
// validation, so that a renamed or removed flag, or a default that the agent
// rejects, fails here instead of in a crash-looping DaemonSet.
func TestAgentArgsParse(t *testing.T) {
	sources := []struct {
		name   string
		render func(t *testing.T) string
		check  func(t *testing.T, o nodeagent.Options)
	}{
		{"kustomize", renderKustomize, nil},
		{"helm defaults", func(t *testing.T) string { return renderHelm(t, "nicpool", namespace) }, nil},
		{"helm values", func(t *testing.T) string {
			return renderHelm(t, "nicpool", namespace, "--set", "nonMasqueradeCIDRs={10.1.0.0/16,172.16.0.0/12}",
				"--set", "agent.mtu=1400", "--set", "perVMLimit=64", "--set", "warmPool.warmIPTarget=0",
				"--set", "agent.extraArgs={--gc-grace=2m}")
		}, func(t *testing.T, o nodeagent.Options) {
			if o.MTU != 1400 || o.Policy.MaxIPs != 64 || o.Policy.WarmIPTarget != 0 || o.GCGrace.String() != "2m0s" ||
				strings.Join(o.NonMasqueradeCIDRs, ",") != "10.1.0.0/16,172.16.0.0/12" {
				t.Errorf("agent options %+v do not carry the chart's values", o)
			}
		}},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			var ds appsv1.DaemonSet
			parse(t, src.render(t)).one(t, "DaemonSet", &ds)
			args := ds.Spec.Template.Spec.Containers[0].Args
			for i, a := range args {
				// The kubelet expands $(NODE_NAME) and $(NODE_IP) from the
				// container's env.
				args[i] = strings.NewReplacer("$(NODE_NAME)", "node-1", "$(NODE_IP)", "10.0.0.4").Replace(a)
			}
			o := nodeagent.DefaultOptions()
			fs := pflag.NewFlagSet("nicpool-agent", pflag.ContinueOnError)
			o.BindFlags(fs)
			if err := fs.Parse(args); err != nil {
				t.Fatalf("agent rejects its rendered flags %v: %v", args, err)
			}
			if err := o.Validate(); err != nil {
				t.Fatalf("agent rejects its rendered options %v: %v", args, err)
			}
			if o.NodeName != "node-1" {
				t.Errorf("agent node name = %q, want it from $(NODE_NAME)", o.NodeName)
			}
			if src.check != nil {
				src.check(t, o)
			}
		})
	}
}

// TestOperatorArgsParse does for the operator what TestAgentArgsParse does
// for the agent, with each Azure identity the chart offers.
func TestOperatorArgsParse(t *testing.T) {
	const clientID = "11111111-2222-3333-4444-555555555555"
	sources := []struct {
		name      string
		render    func(t *testing.T) string
		wantAuth  azure.AuthMode
		wantScope controllers.Scope
	}{
		{"kustomize", renderKustomize, azure.AuthDefault, controllers.Scope{}},
		{"helm defaults", func(t *testing.T) string { return renderHelm(t, "nicpool", namespace) }, azure.AuthDefault, controllers.Scope{}},
		{"helm workload identity", func(t *testing.T) string {
			return renderHelm(t, "nicpool", namespace, "--set", "workloadIdentity.clientID="+clientID,
				"--set", "azure.cloud=AzureChina", "--set", "perVMLimit=64", "--set", "perVNetLimit=4000",
				"--set", "azure.subscriptionID="+clientID, "--set", "azure.resourceGroup=rg-nodes")
		}, azure.AuthWorkloadIdentity, controllers.Scope{SubscriptionID: clientID, ResourceGroup: "rg-nodes"}},
		{"helm managed identity", func(t *testing.T) string {
			return renderHelm(t, "nicpool", namespace, "--set", "managedIdentity.clientID="+clientID,
				"--set", "azure.armEndpoint=https://management.example.test")
		}, azure.AuthManagedIdentity, controllers.Scope{}},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			var dep appsv1.Deployment
			parse(t, src.render(t)).one(t, "Deployment", &dep)
			args := dep.Spec.Template.Spec.Containers[0].Args
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, "$(POD_NAMESPACE)", namespace)
			}
			o := controllers.DefaultOptions()
			fs := flag.NewFlagSet("nicpool-operator", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o.BindFlags(fs)
			if err := fs.Parse(args); err != nil {
				t.Fatalf("operator rejects its rendered flags %v: %v", args, err)
			}
			if err := o.Validate(); err != nil {
				t.Fatalf("operator rejects its rendered options %v: %v", args, err)
			}
			if o.Azure.Auth != src.wantAuth || !o.LeaderElect || o.LeaderElectionNamespace != namespace {
				t.Errorf("operator auth %q, leader election %v in %q; want %q, true, %q",
					o.Azure.Auth, o.LeaderElect, o.LeaderElectionNamespace, src.wantAuth, namespace)
			}
			if o.Scope != src.wantScope {
				t.Errorf("operator scope = %+v, want %+v", o.Scope, src.wantScope)
			}
			if src.wantAuth != azure.AuthDefault && o.Azure.ClientID != clientID {
				t.Errorf("operator client ID = %q, want %q", o.Azure.ClientID, clientID)
			}
		})
	}
}
