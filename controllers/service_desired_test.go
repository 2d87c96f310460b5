package controllers

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

const unitSubnet = "/subscriptions/s1/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nodes"

func unitService(annotations map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "1234-abcd", Annotations: annotations},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(LoadBalancerClass), Ports: ports},
	}
}

// TestServiceDesired checks what a Service asks of its load balancer: the
// frontend (internal on the default or a named subnet, static address;
// public on a created or named public IP), one rule and probe per port with
// named target ports resolved from EndpointSlices, and what cannot be served.
func TestServiceDesired(t *testing.T) {
	names, err := newServiceLBs(ServiceLBOptions{SubnetID: unitSubnet, Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	http := corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}
	named := corev1.ServicePort{Name: "web", Port: 443, TargetPort: intstr.FromString("https"), Protocol: corev1.ProtocolTCP}
	dns := corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}
	sctp := corev1.ServicePort{Name: "s", Port: 9, Protocol: corev1.ProtocolSCTP}
	slice := discoveryv1.EndpointSlice{Ports: []discoveryv1.EndpointPort{{Name: ptr.To("web"), Port: ptr.To[int32](8443), Protocol: ptr.To(corev1.ProtocolTCP)}}}
	internal := map[string]string{AnnotationLBInternal: "true"}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name      string
		svc       *corev1.Service
		slices    []discoveryv1.EndpointSlice
		lb        string
		frontend  svcFrontend
		rules     []string // name protocol front->back probe
		problems  int
		notServed bool
	}{
		{"internal", unitService(internal, http), nil, "k-internal", svcFrontend{subnetID: unitSubnet},
			[]string{"svc-1234abcd-TCP-80 Tcp 80->8080 Tcp"}, 0, false},
		{"internal subnet and address", unitService(with(internal, AnnotationLBInternalSubnet, "lb", AnnotationLBIPv4, "10.1.2.3"), http), nil, "k-internal",
			svcFrontend{subnetID: strings.TrimSuffix(unitSubnet, "nodes") + "lb", staticIP: "10.1.2.3"}, []string{"svc-1234abcd-TCP-80 Tcp 80->8080 Tcp"}, 0, false},
		{"public, created IP, http probe", unitService(map[string]string{AnnotationLBProbePath: "/healthz"}, http), nil, "k",
			svcFrontend{publicIPID: "/subscriptions/s1/resourceGroups/rg-net/providers/Microsoft.Network/publicIPAddresses/nicpool-svc-1234abcd"},
			[]string{"svc-1234abcd-TCP-80 Tcp 80->8080 Http"}, 0, false},
		{"public, named IP, address ignored", func() *corev1.Service {
			s := unitService(map[string]string{AnnotationPIPName: "mine"}, http)
			s.Spec.LoadBalancerIP = "1.2.3.4"
			return s
		}(), nil, "k", svcFrontend{publicIPID: "/subscriptions/s1/resourceGroups/rg-net/providers/Microsoft.Network/publicIPAddresses/mine"},
			[]string{"svc-1234abcd-TCP-80 Tcp 80->8080 Tcp"}, 1, false},
		{"named port resolved, udp without probe, sctp left out", unitService(internal, named, dns, sctp), []discoveryv1.EndpointSlice{slice}, "k-internal",
			svcFrontend{subnetID: unitSubnet}, []string{"svc-1234abcd-TCP-443 Tcp 443->8443 Tcp", "svc-1234abcd-UDP-53 Udp 53->53 "}, 1, false},
		{"named port not resolved yet", unitService(internal, named, http), nil, "k-internal", svcFrontend{subnetID: unitSubnet},
			[]string{"svc-1234abcd-TCP-80 Tcp 80->8080 Tcp"}, 1, false},
		{"bad address", unitService(with(internal, AnnotationLBIPv4, "not-an-ip"), http), nil, "", svcFrontend{}, nil, 0, true},
		{"bad probe path", unitService(map[string]string{AnnotationLBProbePath: "healthz"}, http), nil, "", svcFrontend{}, nil, 0, true},
		{"no servable port", unitService(internal, sctp), nil, "", svcFrontend{}, nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, problems, err := names.desired(tt.svc, tt.slices)
			if tt.notServed {
				if !errors.Is(err, errNotServable) {
					t.Fatalf("err = %v, want errNotServable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(d.lbID, "/loadBalancers/"+tt.lb) || d.frontend != tt.frontend || len(problems) != tt.problems {
				t.Errorf("lb %s, frontend %+v, problems %v; want %s, %+v, %d problems", d.lbID, d.frontend, problems, tt.lb, tt.frontend, tt.problems)
			}
			var rules []string
			for _, r := range d.rules {
				rules = append(rules, r.name+" "+string(r.protocol)+" "+itoa(r.frontendPort)+"->"+itoa(r.backendPort)+" "+string(r.probe))
			}
			if !slices.Equal(rules, tt.rules) {
				t.Errorf("rules %q, want %q", rules, tt.rules)
			}
		})
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// TestApplyAndRemoveService checks the load balancer edits: a Service's
// elements replace its old ones and leave another Service's alone; removal
// keeps the pool (and a last frontend) while members remain.
func TestApplyAndRemoveService(t *testing.T) {
	lbID := "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/k-internal"
	mk := func(key string, ports ...int32) svcLB {
		d := svcLB{lbID: lbID, key: key, frontend: svcFrontend{subnetID: unitSubnet}}
		for _, p := range ports {
			d.rules = append(d.rules, svcRule{name: key + "-TCP-" + itoa(p), protocol: armnetwork.TransportProtocolTCP, frontendPort: p, backendPort: p, probe: armnetwork.ProbeProtocolTCP})
		}
		return d
	}
	lb := &armnetwork.LoadBalancer{ID: to.Ptr(lbID)}
	a, b := mk("svc-a", 80, 81), mk("svc-b", 80)
	applyService(lb, a)
	applyService(lb, b)
	a2 := mk("svc-a", 82)
	applyService(lb, a2)
	if !slices.Equal(serviceSignature(lb, "svc-a"), desiredSignature(a2)) || !slices.Equal(serviceSignature(lb, "svc-b"), desiredSignature(b)) {
		t.Fatalf("after re-applying a: a %v, b %v", serviceSignature(lb, "svc-a"), serviceSignature(lb, "svc-b"))
	}
	if n := len(lb.Properties.LoadBalancingRules); n != 2 {
		t.Errorf("%d rules, want 2 (a's 82, b's 80)", n)
	}
	// b's pool keeps members: its rules and probes go, pool stays; its
	// frontend goes as another one remains.
	if !removeService(lb, "svc-b", true) {
		t.Fatal("removeService reported no change")
	}
	sig := serviceSignature(lb, "svc-b")
	if len(sig) != 1 || !strings.HasPrefix(sig[0], "pool|") {
		t.Errorf("after removing b with members: %v, want only its pool", sig)
	}
	// a alone with members: its frontend stays too (a load balancer needs one).
	removeService(lb, "svc-b", false)
	removeService(lb, "svc-a", true)
	if sig := serviceSignature(lb, "svc-a"); len(sig) != 2 || !hasFrontends(lb) {
		t.Errorf("after removing a (last, with members): %v, want its frontend and pool", sig)
	}
	removeService(lb, "svc-a", false)
	if hasFrontends(lb) || len(lb.Properties.BackendAddressPools) != 0 {
		t.Errorf("after removing everything: %+v", lb.Properties)
	}
}

// TestReadyEndpointIPs checks the index: ready and unspecified endpoints,
// not the not-ready ones, IPv4 slices only.
func TestReadyEndpointIPs(t *testing.T) {
	s := &discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{
		{Addresses: []string{"10.0.0.5"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
		{Addresses: []string{"10.0.0.6"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true)}},
		{Addresses: []string{"10.0.0.4"}},
	}}
	if got := readyEndpointIPs(s); !slices.Equal(got, []string{"10.0.0.4", "10.0.0.5"}) {
		t.Errorf("ready IPs %v", got)
	}
	s.AddressType = discoveryv1.AddressTypeIPv6
	if got := readyEndpointIPs(s); len(got) != 0 {
		t.Errorf("IPv6 slice indexed: %v", got)
	}
}
