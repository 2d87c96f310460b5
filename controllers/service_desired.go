package controllers

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Service annotations nicpool reads, as cloud-provider-azure names them.
const (
	// AnnotationLBInternal "true" puts the Service's frontend in the VNet
	// (an internal load balancer) instead of on a public IP.
	AnnotationLBInternal = "service.beta.kubernetes.io/azure-load-balancer-internal"
	// AnnotationLBInternalSubnet names the subnet (of the default subnet's
	// VNet) an internal frontend takes its address from.
	AnnotationLBInternalSubnet = "service.beta.kubernetes.io/azure-load-balancer-internal-subnet"
	// AnnotationLBProbePath makes the health probes HTTP GETs of this path
	// on the target port (TCP connects otherwise).
	AnnotationLBProbePath = "service.beta.kubernetes.io/azure-load-balancer-health-probe-request-path"
	// AnnotationLBIPv4 asks for this private address on an internal
	// frontend (as spec.loadBalancerIP, which it takes precedence over).
	AnnotationLBIPv4 = "service.beta.kubernetes.io/azure-load-balancer-ipv4"
	// AnnotationPIPName names an existing public IP (in the load balancer's
	// resource group) for a public frontend; nicpool then neither creates
	// nor deletes one.
	AnnotationPIPName = "service.beta.kubernetes.io/azure-pip-name"
)

// LoadBalancerClass is spec.loadBalancerClass of the Services nicpool serves.
// cloud-provider-azure ignores Services with a class, and nicpool ignores all
// others, so the two coexist.
const LoadBalancerClass = "nicpool.io/azure-pod-lb"

// Names nicpool keeps on the Services it serves.
const (
	// ServiceFinalizer keeps a Service until its load balancer elements,
	// backend memberships and created public IP are gone.
	ServiceFinalizer = "network.nicpool.io/load-balancer"
	// AnnotationServiceBackendPool is written by the operator once the
	// Service's backend pool exists: its ARM ID. Pool passes put the IPs of
	// the Service's ready endpoints into this pool only while it names the
	// pool the Service's current settings call for.
	AnnotationServiceBackendPool = "network.nicpool.io/load-balancer-backend-pool"
)

// errNotServable is a Service setting nicpool cannot serve (an Event says
// which); retrying does not help until the Service changes.
var errNotServable = errors.New("service cannot be served")

// serviceLBs names the load balancers Services are served by: one public and
// one internal, as cloud-provider-azure does.
type serviceLBs struct {
	opts ServiceLBOptions
	sub  string
	// vnetID is the VNet of opts.SubnetID.
	vnetID string
}

func newServiceLBs(opts ServiceLBOptions) (*serviceLBs, error) {
	segs := strings.Split(strings.Trim(opts.SubnetID, "/"), "/")
	if len(segs) != 10 || !strings.EqualFold(segs[0], "subscriptions") || !strings.EqualFold(segs[8], "subnets") {
		return nil, fmt.Errorf("--service-lb-subnet %q: not a subnet ID", opts.SubnetID)
	}
	rg := opts.ResourceGroup
	if rg == "" {
		rg = segs[3]
	}
	opts.ResourceGroup = rg
	return &serviceLBs{opts: opts, sub: segs[1], vnetID: "/" + strings.Join(segs[:8], "/")}, nil
}

func (l *serviceLBs) lbID(internal bool) string {
	name := l.opts.Name
	if internal {
		name += "-internal"
	}
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/loadBalancers/%s", l.sub, l.opts.ResourceGroup, name)
}

func (l *serviceLBs) publicIPID(name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/publicIPAddresses/%s", l.sub, l.opts.ResourceGroup, name)
}

// serviceKey names a Service's elements on the load balancer: its UID, so a
// Service deleted and created again under the same name gets new ones.
func serviceKey(svc *corev1.Service) string {
	return "svc-" + strings.ReplaceAll(string(svc.UID), "-", "")
}

// createdPIPName is the public IP nicpool creates for a public Service.
func createdPIPName(svc *corev1.Service) string { return "nicpool-" + serviceKey(svc) }

// servedByNicpool reports whether nicpool serves svc: type LoadBalancer with
// nicpool's class.
func servedByNicpool(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass != nil &&
		*svc.Spec.LoadBalancerClass == LoadBalancerClass
}

func isInternal(svc *corev1.Service) bool {
	return strings.EqualFold(svc.Annotations[AnnotationLBInternal], "true")
}

// expectedPool is the backend pool the Service's settings call for.
func (l *serviceLBs) expectedPool(svc *corev1.Service) string {
	return l.lbID(isInternal(svc)) + "/backendAddressPools/" + serviceKey(svc)
}

// activePool is the backend pool the IPs of svc's ready endpoints join, ""
// for none: svc is served, not being deleted, and the operator has created
// the pool its settings call for.
func (l *serviceLBs) activePool(svc *corev1.Service) string {
	if !servedByNicpool(svc) || !svc.DeletionTimestamp.IsZero() {
		return ""
	}
	want := l.expectedPool(svc)
	if !strings.EqualFold(svc.Annotations[AnnotationServiceBackendPool], want) {
		return ""
	}
	return want
}

// desired computes what svc needs on its load balancer. slices resolve
// named target ports. A port that cannot be served is reported in problems
// and left out; an error means nothing can be served.
func (l *serviceLBs) desired(svc *corev1.Service, slices []discoveryv1.EndpointSlice) (d svcLB, problems []string, err error) {
	internal := isInternal(svc)
	d = svcLB{lbID: l.lbID(internal), key: serviceKey(svc)}
	if internal {
		d.frontend.subnetID = l.opts.SubnetID
		if s := svc.Annotations[AnnotationLBInternalSubnet]; s != "" {
			if strings.Contains(s, "/") {
				return d, nil, fmt.Errorf("annotation %s=%q: want a subnet name of VNet %s: %w", AnnotationLBInternalSubnet, s, l.vnetID, errNotServable)
			}
			d.frontend.subnetID = l.vnetID + "/subnets/" + s
		}
		ip := svc.Annotations[AnnotationLBIPv4]
		if ip == "" {
			ip = svc.Spec.LoadBalancerIP
		}
		if ip != "" {
			a, perr := netip.ParseAddr(ip)
			if perr != nil || !a.Is4() {
				return d, nil, fmt.Errorf("requested frontend address %q is not an IPv4 address: %w", ip, errNotServable)
			}
			d.frontend.staticIP = a.String()
		}
	} else {
		if svc.Spec.LoadBalancerIP != "" || svc.Annotations[AnnotationLBIPv4] != "" {
			problems = append(problems, "a public frontend's address comes from its public IP: name an existing one with "+AnnotationPIPName+"; the requested address is ignored")
		}
		name := createdPIPName(svc)
		if n := svc.Annotations[AnnotationPIPName]; n != "" {
			name = n
		}
		d.frontend.publicIPID = l.publicIPID(name)
	}
	path := svc.Annotations[AnnotationLBProbePath]
	if path != "" && !strings.HasPrefix(path, "/") {
		return d, nil, fmt.Errorf("annotation %s=%q: must start with /: %w", AnnotationLBProbePath, path, errNotServable)
	}
	for _, p := range svc.Spec.Ports {
		r, problem := serviceRule(d.key, p, slices, path)
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		d.rules = append(d.rules, r)
	}
	if len(d.rules) == 0 && len(svc.Spec.Ports) > 0 && len(problems) == len(svc.Spec.Ports) {
		return d, problems, fmt.Errorf("no port can be served: %s: %w", strings.Join(problems, "; "), errNotServable)
	}
	return d, problems, nil
}

// serviceRule turns one Service port into a rule, resolving a named target
// port from the EndpointSlices (which carry the pods' port numbers).
func serviceRule(key string, p corev1.ServicePort, slices []discoveryv1.EndpointSlice, path string) (svcRule, string) {
	var proto armnetwork.TransportProtocol
	switch p.Protocol {
	case corev1.ProtocolTCP, "":
		proto = armnetwork.TransportProtocolTCP
	case corev1.ProtocolUDP:
		proto = armnetwork.TransportProtocolUDP
	default:
		return svcRule{}, fmt.Sprintf("port %d: Azure load balancers carry TCP and UDP, not %s", p.Port, p.Protocol)
	}
	backend := int32(0)
	switch {
	case p.TargetPort.IntValue() > 0:
		backend = int32(p.TargetPort.IntValue())
	case p.TargetPort.String() == "" || p.TargetPort.String() == "0":
		backend = p.Port
	default:
		backend = namedPort(slices, p.Name, p.Protocol)
		if backend == 0 {
			return svcRule{}, fmt.Sprintf("port %d: target port %q is not resolved yet (no EndpointSlice names it)", p.Port, p.TargetPort.String())
		}
	}
	r := svcRule{name: fmt.Sprintf("%s-%s-%d", key, strings.ToUpper(string(proto)), p.Port), protocol: proto, frontendPort: p.Port, backendPort: backend}
	if proto == armnetwork.TransportProtocolTCP {
		r.probe = armnetwork.ProbeProtocolTCP
		if path != "" {
			r.probe, r.probePath = armnetwork.ProbeProtocolHTTP, path
		}
	}
	return r, ""
}

// namedPort returns the port number EndpointSlices give the Service port
// name, 0 when none does.
func namedPort(slices []discoveryv1.EndpointSlice, name string, proto corev1.Protocol) int32 {
	for _, s := range slices {
		for _, p := range s.Ports {
			if p.Port != nil && p.Name != nil && *p.Name == name && (p.Protocol == nil || *p.Protocol == proto || proto == "") {
				return *p.Port
			}
		}
	}
	return 0
}
