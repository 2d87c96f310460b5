package install_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestKustomizeApplies applies config/default server-side, first as a dry run
// (the API server validates and admits every object but stores none), then
// for real, and checks the objects are there. A server dry run of namespaced
// objects needs their namespace, so the namespace goes first: dry run, then
// for real.
func TestKustomizeApplies(t *testing.T) {
	kubectl := kubectlPath(t)
	mustRun(t, nil, kubectl, "apply", "--server-side", "--dry-run=server", "--field-manager=install-test", "-k", "config/namespace")
	mustRun(t, nil, kubectl, "apply", "--server-side", "--field-manager=install-test", "-k", "config/namespace")
	out := mustRun(t, nil, kubectl, "apply", "--server-side", "--dry-run=server", "--field-manager=install-test", "-k", "config/default")
	if !strings.Contains(out, "serverside-applied (server dry run)") {
		t.Errorf("dry run printed no server dry run results:\n%s", out)
	}
	installDefault(t)
	for _, obj := range []struct {
		key client.ObjectKey
		obj client.Object
	}{
		{client.ObjectKey{Name: namespace}, &corev1.Namespace{}},
		{client.ObjectKey{Namespace: namespace, Name: "nicpool-operator"}, &appsv1.Deployment{}},
		{client.ObjectKey{Namespace: namespace, Name: "nicpool-agent"}, &appsv1.DaemonSet{}},
		{client.ObjectKey{Name: "nicpool-agent-own-pool"}, &admissionv1.ValidatingAdmissionPolicy{}},
		{client.ObjectKey{Name: "nicpool-agent-own-pool"}, &admissionv1.ValidatingAdmissionPolicyBinding{}},
	} {
		if err := env.Client.Get(context.Background(), obj.key, obj.obj); err != nil {
			t.Errorf("get %T %s after apply: %v", obj.obj, obj.key, err)
		}
	}
	// Applying again changes nothing and conflicts with nothing.
	mustRun(t, nil, kubectl, "apply", "--server-side", "--field-manager=install-test", "-k", "config/default")
	// The sample is a valid NodeIPPool.
	mustRun(t, nil, kubectl, "apply", "--server-side", "--dry-run=server", "-k", "config/samples")
}

// TestHelmApplies renders the chart with non-default values and applies it
// server-side into its own namespace, as a dry run and for real. The release
// name differs from config/default's so that both installs coexist.
func TestHelmApplies(t *testing.T) {
	kubectl := kubectlPath(t)
	const ns, release = "nicpool-helm", "np"
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	rendered := renderHelm(t, release, ns,
		"--set", "workloadIdentity.clientID=11111111-2222-3333-4444-555555555555",
		"--set", "azure.tenantID=66666666-7777-8888-9999-000000000000",
		"--set", "perVMLimit=100", "--set", "perVNetLimit=5000",
		"--set", "nonMasqueradeCIDRs={10.1.0.0/16,192.168.0.0/24}",
		"--set", "image.tag=v9.9.9")
	ms := parse(t, rendered)
	checkWorkloadIdentity(t, ms)

	stdin := []byte(rendered)
	out := mustRun(t, stdin, kubectl, "apply", "--server-side", "--dry-run=server", "--field-manager=helm-test", "-f", "-")
	if !strings.Contains(out, "(server dry run)") {
		t.Errorf("dry run printed no server dry run results:\n%s", out)
	}
	mustRun(t, stdin, kubectl, "apply", "--server-side", "--field-manager=helm-test", "-f", "-")
	var ds appsv1.DaemonSet
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "np-nicpool-agent"}, &ds); err != nil {
		t.Fatalf("get the chart's DaemonSet: %v", err)
	}
	args := strings.Join(ds.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--non-masquerade-cidrs=10.1.0.0/16,192.168.0.0/24") {
		t.Errorf("agent args %q lack the non-masquerade CIDRs", args)
	}
	if img := ds.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/nicpool/nicpool-agent:v9.9.9" {
		t.Errorf("agent image = %q, want the chart's repository with tag v9.9.9", img)
	}
	var vap admissionv1.ValidatingAdmissionPolicy
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: "np-nicpool-agent-own-pool"}, &vap); err != nil {
		t.Fatalf("get the chart's admission policy: %v", err)
	}
	if got := vap.Spec.MatchConditions[0].Expression; !strings.Contains(got, "system:serviceaccount:nicpool-helm:np-nicpool-agent") {
		t.Errorf("policy match condition %q does not name the release's agent ServiceAccount", got)
	}
}

// checkWorkloadIdentity checks the wiring of Azure workload identity: the
// ServiceAccount names the client ID, the pod opts in, the operator is told.
func checkWorkloadIdentity(t *testing.T, ms manifests) {
	t.Helper()
	var sa *corev1.ServiceAccount
	for _, m := range ms {
		if m.GetKind() == "ServiceAccount" && strings.HasSuffix(m.GetName(), "-operator") {
			sa = &corev1.ServiceAccount{}
			sa.Annotations = m.GetAnnotations()
		}
	}
	if sa == nil || sa.Annotations["azure.workload.identity/client-id"] != "11111111-2222-3333-4444-555555555555" {
		t.Errorf("operator ServiceAccount lacks the azure.workload.identity/client-id annotation")
	}
	var dep appsv1.Deployment
	ms.one(t, "Deployment", &dep)
	if dep.Spec.Template.Labels["azure.workload.identity/use"] != "true" {
		t.Errorf("operator pod lacks the azure.workload.identity/use label")
	}
	args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"--auth-mode=workload-identity", "--per-vm-limit=100", "--per-vnet-limit=5000",
		"--tenant-id=66666666-7777-8888-9999-000000000000"} {
		if !strings.Contains(args, want) {
			t.Errorf("operator args %q lack %s", args, want)
		}
	}
}

// TestWorkloadIdentityOverlay checks the sample overlay that switches
// config/default to Azure workload identity, and that it applies (dry run).
func TestWorkloadIdentityOverlay(t *testing.T) {
	kubectl := kubectlPath(t)
	ms := parse(t, mustRun(t, nil, kubectl, "kustomize", "config/samples/workload-identity"))
	var dep appsv1.Deployment
	ms.one(t, "Deployment", &dep)
	if args := dep.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--auth-mode=workload-identity") {
		t.Errorf("operator args %v lack --auth-mode=workload-identity", args)
	}
	if dep.Spec.Template.Labels["azure.workload.identity/use"] != "true" {
		t.Errorf("operator pod lacks the azure.workload.identity/use label")
	}
	annotated := slices.ContainsFunc(ms, func(m *unstructured.Unstructured) bool {
		return m.GetKind() == "ServiceAccount" && m.GetName() == "nicpool-operator" &&
			m.GetAnnotations()["azure.workload.identity/client-id"] != ""
	})
	if !annotated {
		t.Errorf("operator ServiceAccount lacks the azure.workload.identity/client-id annotation")
	}
	installDefault(t) // the namespace must exist for a server dry run
	mustRun(t, nil, kubectl, "apply", "--server-side", "--dry-run=server", "--field-manager=install-test", "-k", "config/samples/workload-identity")
}
