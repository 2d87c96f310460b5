package install_test

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// manifests is a rendered set of objects.
type manifests []*unstructured.Unstructured

// parse splits a multi-document YAML stream into objects.
func parse(t *testing.T, data string) manifests {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(data)), 4096)
	var out manifests
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("parse rendered manifests: %v", err)
		}
		if len(obj) != 0 {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}

// one returns the only object of kind, converted into into.
func (ms manifests) one(t *testing.T, kind string, into any) {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, m := range ms {
		if m.GetKind() == kind {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("rendered %d objects of kind %s, want 1", len(found), kind)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(found[0].Object, into); err != nil {
		t.Fatalf("convert %s: %v", kind, err)
	}
}

func (ms manifests) kinds() []string {
	ks := make([]string, 0, len(ms))
	for _, m := range ms {
		ks = append(ks, m.GetKind())
	}
	return ks
}

// renderKustomize renders config/default.
func renderKustomize(t *testing.T) string {
	t.Helper()
	return mustRun(t, nil, kubectlPath(t), "kustomize", "config/default")
}

// renderHelm renders the chart as release name in namespace ns.
func renderHelm(t *testing.T, name, ns string, args ...string) string {
	t.Helper()
	base := []string{"template", name, "charts/nicpool", "--namespace", ns, "--include-crds"}
	return mustRun(t, nil, helmPath(t), slices.Concat(base, args)...)
}

// TestManifestsAreLeastPrivilege checks the pods' security settings in both
// the kustomize config and the Helm chart: the operator runs as non-root with
// nothing but a read-only root filesystem; the agent gets host networking and
// only NET_ADMIN and NET_RAW; nothing carries a credential.
func TestManifestsAreLeastPrivilege(t *testing.T) {
	sources := []struct {
		name   string
		render func(t *testing.T) string
	}{
		{"kustomize", renderKustomize},
		{"helm", func(t *testing.T) string { return renderHelm(t, "nicpool", namespace) }},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			ms := parse(t, src.render(t))
			for _, k := range []string{"Secret", "ConfigMap"} {
				if slices.Contains(ms.kinds(), k) {
					t.Errorf("renders a %s; nicpool keeps no configuration or credentials in them", k)
				}
			}
			var dep appsv1.Deployment
			ms.one(t, "Deployment", &dep)
			checkOperator(t, &dep)
			var ds appsv1.DaemonSet
			ms.one(t, "DaemonSet", &ds)
			checkAgent(t, &ds)
		})
	}
}

func checkOperator(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("operator replicas = %v, want 2", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("operator pod does not set runAsNonRoot")
	}
	if pod.SecurityContext == nil || pod.SecurityContext.SeccompProfile == nil ||
		pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("operator pod does not use the RuntimeDefault seccomp profile")
	}
	c := onlyContainer(t, pod)
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("operator capabilities = %+v, want drop ALL and add none", sc)
	}
	checkCommonContainer(t, "operator", c)
	if !slices.Contains(c.Args, "--leader-elect=true") {
		t.Errorf("operator args %v lack --leader-elect=true", c.Args)
	}
}

func checkAgent(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork {
		t.Errorf("agent does not use the host network")
	}
	if pod.PriorityClassName != "system-node-critical" {
		t.Errorf("agent priority class = %q, want system-node-critical", pod.PriorityClassName)
	}
	if !slices.ContainsFunc(pod.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == ""
	}) {
		t.Errorf("agent tolerations %+v do not tolerate every taint", pod.Tolerations)
	}
	c := onlyContainer(t, pod)
	sc := c.SecurityContext
	want := []corev1.Capability{"NET_ADMIN", "NET_RAW"}
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!slices.Equal(sc.Capabilities.Add, want) {
		t.Errorf("agent capabilities = %+v, want drop ALL, add %v", sc, want)
	}
	if sc != nil && sc.Privileged != nil && *sc.Privileged {
		t.Errorf("agent is privileged")
	}
	checkCommonContainer(t, "agent", c)
	var hostPaths []string
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths = append(hostPaths, v.HostPath.Path)
		}
	}
	for _, p := range []string{"/opt/cni/bin", "/etc/cni/net.d", "/var/lib/nicpool", "/run/nicpool"} {
		if !slices.Contains(hostPaths, p) {
			t.Errorf("agent host paths %v lack %s", hostPaths, p)
		}
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		t.Errorf("agent does not get NODE_NAME from spec.nodeName")
	}
}

func onlyContainer(t *testing.T, pod corev1.PodSpec) corev1.Container {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			t.Errorf("pod mounts Secret %s", v.Secret.SecretName)
		}
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("pod has %d containers and %d init containers, want one container", len(pod.Containers), len(pod.InitContainers))
	}
	return pod.Containers[0]
}

// checkCommonContainer checks what both containers share: no privilege
// escalation, a read-only root filesystem, and no Secret anywhere.
func checkCommonContainer(t *testing.T, name string, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s allows privilege escalation", name)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s root filesystem is writable", name)
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			t.Errorf("%s reads env %s from a Secret", name, e.Name)
		}
		if strings.Contains(strings.ToUpper(e.Name), "SECRET") {
			t.Errorf("%s has a credential-like env var %s", name, e.Name)
		}
	}
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil {
			t.Errorf("%s takes env from Secret %s", name, ef.SecretRef.Name)
		}
	}
}
