package install_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestServiceAccountPermissions asks `kubectl auth can-i`, impersonating each
// installed ServiceAccount, for what it needs (allowed) and for what it must
// never get (denied): no Secrets anywhere, no other kinds, no deleting pools.
func TestServiceAccountPermissions(t *testing.T) {
	installDefault(t)
	kubectl := kubectlPath(t)
	tests := []struct {
		user  string
		args  []string // verb, resource and flags
		allow bool
	}{
		{agentUser, []string{"get", "nodeippools.network.nicpool.io"}, true},
		{agentUser, []string{"watch", "nodeippools.network.nicpool.io"}, true},
		{agentUser, []string{"update", "nodeippools.network.nicpool.io"}, true},
		{agentUser, []string{"patch", "nodeippools.network.nicpool.io"}, true},
		{agentUser, []string{"delete", "nodeippools.network.nicpool.io"}, false},
		{agentUser, []string{"create", "nodeippools.network.nicpool.io"}, false},
		{agentUser, []string{"update", "nodeippools.network.nicpool.io", "--subresource=status"}, false},
		{agentUser, []string{"get", "secrets", "--all-namespaces"}, false},
		{agentUser, []string{"list", "secrets", "-n", namespace}, false},
		{agentUser, []string{"get", "configmaps", "-n", namespace}, false},
		{agentUser, []string{"get", "nodes"}, true}, // --cni-version=auto reads the container runtime
		{agentUser, []string{"list", "nodes"}, false},
		{agentUser, []string{"update", "nodes"}, false},
		{agentUser, []string{"create", "pods", "-n", namespace}, false},
		{agentUser, []string{"delete", "pods", "-n", namespace}, false},
		{agentUser, []string{"create", "serviceaccounts/token", "-n", namespace}, false},
		{agentUser, []string{"update", "validatingadmissionpolicies.admissionregistration.k8s.io"}, false},
		{opUser, []string{"list", "nodes"}, true},
		{opUser, []string{"create", "nodeippools.network.nicpool.io"}, true},
		{opUser, []string{"update", "nodeippools.network.nicpool.io", "--subresource=status"}, true},
		{opUser, []string{"update", "nodeippools.network.nicpool.io", "--subresource=finalizers"}, true},
		{opUser, []string{"create", "leases.coordination.k8s.io", "-n", namespace}, true},
		{opUser, []string{"create", "leases.coordination.k8s.io", "-n", "kube-system"}, false},
		{opUser, []string{"get", "secrets", "--all-namespaces"}, false},
		{opUser, []string{"list", "secrets", "-n", namespace}, false},
		{opUser, []string{"watch", "secrets", "-n", "kube-system"}, false},
		{opUser, []string{"get", "configmaps", "-n", namespace}, false},
		{opUser, []string{"update", "nodes"}, false},
		{opUser, []string{"delete", "nodes"}, false},
		{opUser, []string{"create", "pods", "-n", namespace}, false},
		{opUser, []string{"create", "serviceaccounts/token", "-n", namespace}, false},
		{opUser, []string{"update", "validatingadmissionpolicies.admissionregistration.k8s.io"}, false},
	}
	for _, tt := range tests {
		who := strings.TrimPrefix(tt.user, "system:serviceaccount:"+namespace+":")
		t.Run(who+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			args := append([]string{"auth", "can-i", "--as=" + tt.user, "--as-group=system:serviceaccounts",
				"--as-group=system:serviceaccounts:" + namespace, "--as-group=system:authenticated"}, tt.args...)
			r := run(t, nil, kubectl, args...)
			code := exitCode(r.err)
			if code != 0 && code != 1 {
				t.Fatalf("kubectl auth can-i: %v\n%s", r.err, r.stderr)
			}
			if got := code == 0; got != tt.allow {
				t.Fatalf("can-i = %v (%s), want %v", got, strings.TrimSpace(r.stdout), tt.allow)
			}
		})
	}
}

// TestRolesNeverNameSecrets checks the generated ClusterRoles themselves:
// no rule names Secrets or uses a wildcard, so no later marker can quietly
// widen them to every resource.
func TestRolesNeverNameSecrets(t *testing.T) {
	installDefault(t)
	for _, name := range []string{"nicpool-operator", "nicpool-agent"} {
		t.Run(name, func(t *testing.T) {
			var role rbacv1.ClusterRole
			if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &role); err != nil {
				t.Fatalf("get ClusterRole %s: %v", name, err)
			}
			for _, r := range role.Rules {
				for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs} {
					if slices.Contains(list, "*") {
						t.Errorf("rule %+v uses a wildcard", r)
					}
				}
				if slices.Contains(r.Resources, "secrets") {
					t.Errorf("rule %+v grants access to secrets", r)
				}
			}
		})
	}
}
