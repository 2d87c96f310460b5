package install_test

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nicpool/nicpool/controllers"
)

// TestServiceLoadBalancersOptIn renders the chart without and with
// serviceLoadBalancers.enabled: off, the operator gets no Service or
// EndpointSlice permission in any of its ClusterRoles and no
// --service-load-balancers flag; on, it gets exactly the rules the Service
// controller's markers ask for, and its flags parse into enabled Service load
// balancers on the given subnet. The kustomize config grants them only with
// config/rbac/operator-services.
func TestServiceLoadBalancersOptIn(t *testing.T) {
	const subnet = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nodes"
	svcResources := []string{"services", "services/status", "services/finalizers", "endpointslices"}
	for _, tt := range []struct {
		name    string
		args    []string
		enabled bool
	}{
		{"off", nil, false},
		{"on", []string{"--set", "serviceLoadBalancers.enabled=true", "--set", "serviceLoadBalancers.subnetID=" + subnet,
			"--set", "serviceLoadBalancers.name=svc"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ms := parse(t, renderHelm(t, "nicpool", namespace, tt.args...))
			var granted []string
			for _, m := range ms {
				if m.GetKind() != "ClusterRole" || !strings.HasPrefix(m.GetName(), "nicpool-operator") {
					continue
				}
				var role rbacv1.ClusterRole
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m.Object, &role); err != nil {
					t.Fatal(err)
				}
				for _, r := range role.Rules {
					for _, res := range r.Resources {
						if slices.Contains(svcResources, res) {
							granted = append(granted, res+":"+strings.Join(r.Verbs, ","))
						}
					}
				}
			}
			if !tt.enabled && len(granted) > 0 {
				t.Errorf("without serviceLoadBalancers the operator is granted %v", granted)
			}
			if tt.enabled {
				slices.Sort(granted)
				want := []string{"endpointslices:get,list,watch", "services/finalizers:update", "services/status:patch,update", "services:get,list,patch,update,watch"}
				if !slices.Equal(granted, want) {
					t.Errorf("with serviceLoadBalancers the operator is granted %v, want %v", granted, want)
				}
			}
			var binding rbacv1.ClusterRoleBinding
			found := false
			for _, m := range ms {
				if m.GetKind() == "ClusterRoleBinding" && m.GetName() == "nicpool-operator-services" {
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m.Object, &binding); err != nil {
						t.Fatal(err)
					}
					found = true
				}
			}
			if found != tt.enabled || (found && (binding.RoleRef.Name != "nicpool-operator-services" || binding.Subjects[0].Name != "nicpool-operator")) {
				t.Errorf("binding of the Service role: found %v %+v, want found %v binding nicpool-operator", found, binding, tt.enabled)
			}
			var dep appsv1.Deployment
			ms.one(t, "Deployment", &dep)
			o := controllers.DefaultOptions()
			fs := flag.NewFlagSet("nicpool-operator", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o.BindFlags(fs)
			args := dep.Spec.Template.Spec.Containers[0].Args
			if err := fs.Parse(args); err != nil {
				t.Fatalf("operator rejects its rendered flags %v: %v", args, err)
			}
			if err := o.Validate(); err != nil {
				t.Fatalf("operator rejects its rendered options: %v", err)
			}
			if o.ServiceLB.Enabled != tt.enabled || (tt.enabled && (o.ServiceLB.SubnetID != subnet || o.ServiceLB.Name != "svc")) {
				t.Errorf("operator service load balancers %+v, want enabled=%v", o.ServiceLB, tt.enabled)
			}
			if !tt.enabled && strings.Contains(renderKustomize(t), "nicpool-operator-services") {
				t.Errorf("config/default grants the Service controller's role")
			}
		})
	}
}
