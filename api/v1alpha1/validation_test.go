package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const validNIC = "/subscriptions/0000-1111/resourceGroups/rg-nodes/providers/Microsoft.Network/networkInterfaces/vm-0-nic"

func TestValidPoolRoundTrips(t *testing.T) {
	ctx := context.Background()
	in := &v1.NodeIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "roundtrip"},
		Spec: v1.NodeIPPoolSpec{
			NICID:            validNIC,
			RequestedIPCount: 250,
			IPsNotInUse:      []v1.IPv4Address{"10.240.0.7", "10.240.0.8"},
		},
	}
	if err := env.Client.Create(ctx, in); err != nil {
		t.Fatalf("create valid pool: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, in) })

	in.Status = v1.NodeIPPoolStatus{
		NICID:            validNIC,
		NICName:          "vm-0-nic",
		SubnetCIDR:       "10.240.0.0/16",
		VNetAddressSpace: []v1.IPv4CIDR{"10.240.0.0/16"},
		PrimaryIP:        "10.240.0.4",
		IPs:              []v1.PoolIP{{IP: "10.240.0.7", IPConfiguration: "nicpool-a"}},
		AllocatedIPCount: 1,
		Conditions: []metav1.Condition{{
			Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Reconciled",
			Message: "ok", LastTransitionTime: metav1.Now(), ObservedGeneration: 1,
		}},
	}
	if err := env.Client.Status().Update(ctx, in); err != nil {
		t.Fatalf("update status: %v", err)
	}

	out := &v1.NodeIPPool{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "roundtrip"}, out); err != nil {
		t.Fatalf("get pool: %v", err)
	}
	if out.Spec.NICID != validNIC || out.Spec.RequestedIPCount != 250 || len(out.Spec.IPsNotInUse) != 2 {
		t.Errorf("spec did not round-trip: %+v", out.Spec)
	}
	if len(out.Status.IPs) != 1 || out.Status.IPs[0].IPConfiguration != "nicpool-a" || out.Status.PrimaryIP != "10.240.0.4" {
		t.Errorf("status did not round-trip: %+v", out.Status)
	}
}

// TestInvalidPoolsAreRejected sends raw objects so that values a typed client
// could not even express still reach the API server's schema validation.
func TestInvalidPoolsAreRejected(t *testing.T) {
	tests := []struct {
		name      string
		spec      map[string]any
		wantField string
	}{
		{"count above per-VM maximum", map[string]any{"requestedIPCount": int64(251)}, "spec.requestedIPCount"},
		{"negative count", map[string]any{"requestedIPCount": int64(-1)}, "spec.requestedIPCount"},
		{"count not a number", map[string]any{"requestedIPCount": "ten"}, "spec.requestedIPCount"},
		{"duplicate ipsNotInUse", map[string]any{"ipsNotInUse": []any{"10.0.0.5", "10.0.0.6", "10.0.0.5"}}, "spec.ipsNotInUse"},
		{"octet out of range", map[string]any{"ipsNotInUse": []any{"10.0.0.300"}}, "spec.ipsNotInUse[0]"},
		{"IPv6 in ipsNotInUse", map[string]any{"ipsNotInUse": []any{"fd00::1"}}, "spec.ipsNotInUse[0]"},
		{"nicID of a VM", map[string]any{"nicID": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-0"}, "spec.nicID"},
		{"nicID not an ARM ID", map[string]any{"nicID": "vm-0-nic"}, "spec.nicID"},
		{"nicID with trailing segment", map[string]any{"nicID": validNIC + "/ipConfigurations/x"}, "spec.nicID"},
		{"unknown field", map[string]any{"requestedIPs": int64(3)}, "spec.requestedIPs"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": v1.GroupVersion.String(),
				"kind":       "NodeIPPool",
				"metadata":   map[string]any{"name": "invalid-" + string(rune('a'+i))},
				"spec":       tc.spec,
			}}
			err := env.Client.Create(context.Background(), obj, client.FieldValidation("Strict"))
			if err == nil {
				_ = env.Client.Delete(context.Background(), obj)
				t.Fatalf("API server accepted an invalid pool with spec %v", tc.spec)
			}
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Errorf("error does not name %s: %v", tc.wantField, err)
			}
		})
	}
}

func TestInvalidStatusIsRejected(t *testing.T) {
	ctx := context.Background()
	pool := &v1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: "badstatus"}}
	if err := env.Client.Create(ctx, pool); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, pool) })

	tests := []struct {
		name      string
		status    v1.NodeIPPoolStatus
		wantField string
	}{
		{"bad ip", v1.NodeIPPoolStatus{IPs: []v1.PoolIP{{IP: "10.1.2", IPConfiguration: "nicpool-a"}}}, "status.ips[0].ip"},
		{"empty ipConfiguration", v1.NodeIPPoolStatus{IPs: []v1.PoolIP{{IP: "10.1.2.3"}}}, "status.ips[0].ipConfiguration"},
		{"duplicate ip", v1.NodeIPPoolStatus{IPs: []v1.PoolIP{{IP: "10.1.2.3", IPConfiguration: "a"}, {IP: "10.1.2.3", IPConfiguration: "b"}}}, "status.ips[1]"},
		{"bad subnet", v1.NodeIPPoolStatus{SubnetCIDR: "10.0.0.0/33"}, "status.subnetCIDR"},
		{"bad primary", v1.NodeIPPoolStatus{PrimaryIP: "node-0"}, "status.primaryIP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := pool.DeepCopy()
			p.Status = tc.status
			err := env.Client.Status().Update(ctx, p)
			if err == nil {
				t.Fatalf("API server accepted invalid status %+v", tc.status)
			}
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Errorf("error does not name %s: %v", tc.wantField, err)
			}
		})
	}
}

// TestNICIDFixedWhileThePoolHoldsIPs: spec.nicID cannot move a pool whose
// status lists IPs (pods use them on its NIC); it may be cleared or set to
// the NIC in status.nicID (ARM IDs are case-insensitive), and moves freely
// once status.ips is empty.
func TestNICIDFixedWhileThePoolHoldsIPs(t *testing.T) {
	ctx := context.Background()
	otherNIC := strings.Replace(validNIC, "vm-0-nic", "vm-1-nic", 1)
	pool := &v1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: "fixednic"}, Spec: v1.NodeIPPoolSpec{NICID: validNIC}}
	if err := env.Client.Create(ctx, pool); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, pool) })
	pool.Status = v1.NodeIPPoolStatus{NICID: validNIC, IPs: []v1.PoolIP{{IP: "10.1.2.3", IPConfiguration: "nicpool-a"}}, AllocatedIPCount: 1}
	if err := env.Client.Status().Update(ctx, pool); err != nil {
		t.Fatalf("update status: %v", err)
	}
	setNIC := func(id string) error {
		p := &v1.NodeIPPool{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "fixednic"}, p); err != nil {
			t.Fatalf("get pool: %v", err)
		}
		p.Spec.NICID = id
		return env.Client.Update(ctx, p)
	}
	tests := []struct {
		name    string
		nicID   string
		allowed bool
	}{
		{"another NIC", otherNIC, false},
		{"the same NIC in other case", strings.ToUpper(validNIC[:1]) + strings.Replace(validNIC[1:], "vm-0-nic", "VM-0-NIC", 1), true},
		{"cleared", "", true},
		{"back to the NIC it is on", validNIC, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := setNIC(tc.nicID)
			switch {
			case tc.allowed && err != nil:
				t.Fatalf("rejected: %v", err)
			case !tc.allowed && err == nil:
				t.Fatal("admitted a move of a pool with IPs")
			case !tc.allowed && (!apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.nicID")):
				t.Fatalf("error is not Invalid on spec.nicID: %v", err)
			}
		})
	}
	p := &v1.NodeIPPool{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "fixednic"}, p); err != nil {
		t.Fatalf("get pool: %v", err)
	}
	p.Status.IPs, p.Status.AllocatedIPCount = nil, 0
	if err := env.Client.Status().Update(ctx, p); err != nil {
		t.Fatalf("empty status.ips: %v", err)
	}
	if err := setNIC(otherNIC); err != nil {
		t.Fatalf("moving a pool without IPs: %v", err)
	}
}

func TestAttachmentValidation(t *testing.T) {
	ctx := context.Background()
	const sub = "/subscriptions/0000-1111/resourceGroups/rg/providers/Microsoft.Network/"
	tests := []struct {
		name    string
		entries []v1.IPAttachment
		wantErr string
	}{
		{name: "all three, and create", entries: []v1.IPAttachment{
			{IP: "10.240.0.7", Pod: &v1.PodReference{Namespace: "default", Name: "web", UID: "u1"},
				ApplicationSecurityGroups:       []v1.ApplicationSecurityGroupID{sub + "applicationSecurityGroups/web"},
				LoadBalancerBackendAddressPools: []v1.BackendPoolID{sub + "loadBalancers/lb/backendAddressPools/be"},
				PublicIPAddress:                 sub + "publicIPAddresses/pip"},
			{IP: "10.240.0.8", PublicIPAddress: "create"},
			{IP: "10.240.0.9"},
		}},
		{name: "an NSG is no ASG", entries: []v1.IPAttachment{{IP: "10.240.0.7", ApplicationSecurityGroups: []v1.ApplicationSecurityGroupID{sub + "networkSecurityGroups/nsg"}}}, wantErr: "applicationSecurityGroups"},
		{name: "a load balancer is no backend pool", entries: []v1.IPAttachment{{IP: "10.240.0.7", LoadBalancerBackendAddressPools: []v1.BackendPoolID{sub + "loadBalancers/lb"}}}, wantErr: "loadBalancerBackendAddressPools"},
		{name: "public IP neither ID nor create", entries: []v1.IPAttachment{{IP: "10.240.0.7", PublicIPAddress: "yes"}}, wantErr: "publicIPAddress"},
		{name: "one entry per IP", entries: []v1.IPAttachment{{IP: "10.240.0.7"}, {IP: "10.240.0.7", PublicIPAddress: "create"}}, wantErr: "Duplicate value"},
		{name: "not an IP", entries: []v1.IPAttachment{{IP: "10.240.0.300"}}, wantErr: "IPv4"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := &v1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("attach-%d", i)}, Spec: v1.NodeIPPoolSpec{Attachments: tt.entries}}
			err := env.Client.Create(ctx, pool)
			if err == nil {
				t.Cleanup(func() { _ = env.Client.Delete(ctx, pool) })
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("create: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("create: err = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}
