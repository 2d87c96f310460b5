package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/attach"
	"github.com/nicpool/nicpool/internal/nicsync"
)

// svcBed is an armsim VNet with two nodes, each holding IPs, and an
// operator serving Services.
type svcBed struct {
	s     *sim
	ns    string
	nodes []string
	ips   map[string][]string // node -> its IPs
	opts  Options
	op    *operator
}

// svcOptions are test operator options with Services served from subnet
// "nodes" of vnet-0, load balancers named lbName.
func svcOptions(lbName string) Options {
	o := testOptions()
	o.ServiceLB = ServiceLBOptions{Enabled: true, Name: lbName,
		SubnetID: fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/virtualNetworks/vnet-0/subnets/nodes", testSub, testRG)}
	return o
}

// newSvcBed starts armsim (vnet CIDR and subnet), the operator (tweak
// adjusts its pool reconciler; no operator when start is false), two nodes
// named prefix-0/1 with 3 IPs each, and a namespace.
func newSvcBed(t *testing.T, prefix, vnetCIDR, subnetCIDR string, start bool, tweak func(*PoolReconciler)) *svcBed {
	t.Helper()
	topo := armsim.GenerateTopology(testSub, testRG, vnetCIDR, subnetCIDR, 2)
	// A load balancer of the administrator's, whose pool pods join by
	// annotation (pod attachments) besides their Services' pools.
	topo.LoadBalancers = []armsim.LBSpec{{ResourceGroup: testRG, Name: "lb", BackendPools: []string{"be"},
		Frontends: []armsim.FrontendSpec{{Name: "fe", VNet: "vnet-0", Subnet: "nodes"}}}}
	b := &svcBed{s: startSim(t, topo), ns: prefix, ips: map[string][]string{}, opts: svcOptions(prefix)}
	if start {
		b.op = startOperator(t, b.s, b.opts, tweak)
	}
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix}}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	for i := 0; i < 2; i++ {
		node := fmt.Sprintf("%s-%d", prefix, i)
		b.nodes = append(b.nodes, node)
		createNode(t, node, providerID(i))
		setRequestWhenExists(t, node, 3)
	}
	if !start {
		return b
	}
	b.waitIPs(t)
	return b
}

// waitIPs waits until every node's pool publishes its 3 IPs.
func (b *svcBed) waitIPs(t *testing.T) {
	t.Helper()
	for i, node := range b.nodes {
		eventually(t, 60*time.Second, func() string { return statusMatchesNIC(b.s, lookPool(node), nicID(i), 3) })
		for _, p := range getPool(t, node).Status.IPs {
			b.ips[node] = append(b.ips[node], string(p.IP))
		}
	}
}

// service returns a Service of type LoadBalancer; class "" leaves
// spec.loadBalancerClass unset.
func (b *svcBed) service(name, class string, internal bool) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: name, Annotations: map[string]string{}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}
	if class != "" {
		svc.Spec.LoadBalancerClass = ptr.To(class)
	}
	if internal {
		svc.Annotations[AnnotationLBInternal] = "true"
	}
	return svc
}

func (b *svcBed) create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// endpoint is one pod endpoint of a Service.
type endpoint struct {
	ip, node string
	ready    bool
}

// setEndpoints writes the Service's one EndpointSlice (as the EndpointSlice
// controller would; envtest runs none).
func (b *svcBed) setEndpoints(t *testing.T, svc string, eps ...endpoint) {
	t.Helper()
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: b.ns, Name: svc + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, e := range eps {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{e.ip}, NodeName: ptr.To(e.node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e.ready)}})
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &discoveryv1.EndpointSlice{}
		err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(slice), cur)
		if apierrors.IsNotFound(err) {
			return env.Client.Create(context.Background(), slice)
		}
		if err != nil {
			return err
		}
		cur.Endpoints, cur.Ports = slice.Endpoints, slice.Ports
		return env.Client.Update(context.Background(), cur)
	})
	if err != nil {
		t.Fatalf("write endpointslice of %s: %v", svc, err)
	}
}

func getService(name, ns string) (*corev1.Service, error) {
	svc := &corev1.Service{}
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, svc)
	return svc, err
}

// lbOf returns the armsim state of load balancer name, or nil.
func lbOf(s *sim, name string) *armsim.LBState {
	for _, l := range s.srv.Snapshot().Network.LoadBalancers {
		if strings.HasSuffix(l.ID, "/loadbalancers/"+strings.ToLower(name)) {
			return &l
		}
	}
	return nil
}

// servedAs reports "" when the Service is published with a frontend on
// load balancer lbName whose pool holds exactly members, with a rule 80 ->
// 8080 (floating IP off: armsim's rules are DNAT to the backend port) and a
// TCP probe on 8080.
func servedAs(s *sim, ns, name, lbName string, members ...string) string {
	svc, err := getService(name, ns)
	if err != nil {
		return err.Error()
	}
	if len(svc.Status.LoadBalancer.Ingress) != 1 {
		return fmt.Sprintf("service ingress %+v", svc.Status.LoadBalancer.Ingress)
	}
	l := lbOf(s, lbName)
	if l == nil {
		return "no load balancer " + lbName
	}
	key := strings.ToLower(serviceKey(svc))
	var fe *armsim.LBFrontendState
	for i := range l.Frontends {
		if strings.EqualFold(l.Frontends[i].Name, key) {
			fe = &l.Frontends[i]
		}
	}
	if fe == nil {
		return "no frontend " + key
	}
	addr := fe.PrivateIP
	if fe.PublicIP.IsValid() {
		addr = fe.PublicIP
	}
	if svc.Status.LoadBalancer.Ingress[0].IP != addr.String() {
		return fmt.Sprintf("ingress %s, frontend %s", svc.Status.LoadBalancer.Ingress[0].IP, addr)
	}
	var got []string
	for _, m := range l.Pools[key] {
		got = append(got, m.String())
	}
	want := slices.Clone(members)
	slices.SortFunc(want, func(a, b string) int { return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b)) })
	if !slices.Equal(got, want) {
		return fmt.Sprintf("backend pool holds %v, want %v", got, want)
	}
	if len(l.Rules) != 1 || l.Rules[0].FrontendPort != 80 || l.Rules[0].BackendPort != 8080 || !strings.EqualFold(l.Rules[0].Pool, key) {
		return fmt.Sprintf("rules %+v", l.Rules)
	}
	if len(l.Probes) != 1 || l.Probes[0].Protocol != "Tcp" || l.Probes[0].Port != 8080 {
		return fmt.Sprintf("probes %+v", l.Probes)
	}
	return ""
}

// leftNothing reports "" when no load balancer element or membership of
// the Service with key is left, the Service is gone, and so is the public
// IP created for it.
func leftNothing(s *sim, ns, name, key string) string {
	if _, err := getService(name, ns); !apierrors.IsNotFound(err) {
		return fmt.Sprintf("service %s still there (%v)", name, err)
	}
	key = strings.ToLower(key)
	snap := s.srv.Snapshot()
	for _, l := range snap.Network.LoadBalancers {
		for _, f := range l.Frontends {
			if strings.EqualFold(f.Name, key) {
				return "frontend left on " + l.ID
			}
		}
		if _, ok := l.Pools[key]; ok {
			return "backend pool left on " + l.ID
		}
		for _, r := range l.Rules {
			if strings.HasPrefix(strings.ToLower(r.Name), key) {
				return "rule left: " + r.Name
			}
		}
		for _, p := range l.Probes {
			if strings.HasPrefix(strings.ToLower(p.Name), key) {
				return "probe left: " + p.Name
			}
		}
	}
	for _, n := range snap.NICs {
		nic, err := s.nics.GetNIC(context.Background(), n.ID)
		if err != nil {
			return err.Error()
		}
		for _, c := range nicsync.Configs(nic) {
			for _, p := range c.Att.Pools {
				if strings.Contains(strings.ToLower(p), key) {
					return fmt.Sprintf("%s still in pool %s", c.IP, p)
				}
			}
		}
	}
	for _, p := range snap.Network.PublicIPs {
		if strings.HasSuffix(p.ID, "/nicpool-"+key) {
			return "created public ip left: " + p.ID
		}
	}
	return ""
}

// TestServiceBackendsFollowEndpoints serves an internal Service: its
// backend pool holds the IP configurations of its ready endpoints' pods
// (not the nodes), follows scale up and down and readiness, records the
// membership in the pools' status.attachments (so the agent holds an IP
// back until it left the pool), leaves a Service without nicpool's class
// alone, and cleans up on delete.
func TestServiceBackendsFollowEndpoints(t *testing.T) {
	ctx := context.Background()
	b := newSvcBed(t, "svc-follow", "10.50.0.0/16", "10.50.0.0/24", true, nil)
	n0, n1 := b.nodes[0], b.nodes[1]
	a, c, d := b.ips[n0][0], b.ips[n0][1], b.ips[n1][0]

	// a's pod asks, by annotation, for the administrator's pool too: its
	// configuration carries both, written by the same pool pass.
	setAttachments(t, n0, -1, nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(a), Pod: podAt(b.ns, "web-a"),
		LoadBalancerBackendAddressPools: []nicpoolv1.BackendPoolID{nicpoolv1.BackendPoolID(idPool)}})
	eventually(t, 30*time.Second, func() string { return settledAt(lookPool(n0), a, nicpoolv1.AttachmentApplied) })
	b.create(t, b.service("web", LoadBalancerClass, true))
	b.create(t, b.service("foreign", "", true))
	b.setEndpoints(t, "foreign", endpoint{a, n0, true})
	b.setEndpoints(t, "web", endpoint{a, n0, true}, endpoint{d, n1, true})
	eventually(t, 60*time.Second, func() string { return servedAs(b.s, b.ns, "web", "svc-follow-internal", a, d) })
	svc, _ := getService("web", b.ns)
	poolID := svc.Annotations[AnnotationServiceBackendPool]
	eventually(t, 30*time.Second, func() string {
		if st := attachState(lookPool(n0), a); st == nil || st.State != nicpoolv1.AttachmentApplied || !attach.SameIDs(st.LoadBalancerBackendAddressPools, []string{poolID, idPool}) {
			return fmt.Sprintf("status.attachments of %s: %+v, want Applied with %s and %s", a, st, poolID, idPool)
		}
		return ""
	})
	if got := configOf(t, b.s, nicID(0), a); !attach.SameIDs(got.Pools, []string{poolID, idPool}) {
		t.Errorf("configuration of %s is in pools %v, want the Service's and the pod's own", a, got.Pools)
	}

	steps := []struct {
		what    string
		eps     []endpoint
		members []string
	}{
		{"scale up", []endpoint{{a, n0, true}, {d, n1, true}, {c, n0, true}}, []string{a, c, d}},
		{"scale down", []endpoint{{a, n0, true}, {c, n0, true}}, []string{a, c}},
		{"a not ready", []endpoint{{a, n0, false}, {c, n0, true}}, []string{c}},
		{"a ready again", []endpoint{{a, n0, true}, {c, n0, true}}, []string{a, c}},
	}
	for _, st := range steps {
		b.setEndpoints(t, "web", st.eps...)
		eventually(t, 30*time.Second, func() string {
			if msg := servedAs(b.s, b.ns, "web", "svc-follow-internal", st.members...); msg != "" {
				return st.what + ": " + msg
			}
			return ""
		})
	}
	if st := attachState(getPool(t, n1), d); st != nil {
		t.Errorf("%s left the Service but status.attachments still reports %+v", d, st)
	}

	foreign, err := getService("foreign", b.ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(foreign.Finalizers) > 0 || foreign.Annotations[AnnotationServiceBackendPool] != "" || len(foreign.Status.LoadBalancer.Ingress) > 0 {
		t.Errorf("a Service without nicpool's class was touched: finalizers %v, annotations %v, ingress %v",
			foreign.Finalizers, foreign.Annotations, foreign.Status.LoadBalancer.Ingress)
	}
	if l := lbOf(b.s, "svc-follow-internal"); l == nil || len(l.Frontends) != 1 {
		t.Errorf("the internal load balancer should hold only web's frontend: %+v", l)
	}

	key := serviceKey(svc)
	if err := env.Client.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() string { return leftNothing(b.s, b.ns, "web", key) })
	for _, node := range b.nodes {
		for _, ip := range b.ips[node] {
			if st := attachState(getPool(t, node), ip); st != nil && !(ip == a && attach.SameIDs(st.LoadBalancerBackendAddressPools, []string{idPool})) {
				t.Errorf("after the delete status.attachments reports %+v", st)
			}
		}
	}
	if got := configOf(t, b.s, nicID(0), a); !attach.SameIDs(got.Pools, []string{idPool}) {
		t.Errorf("after the delete %s is in pools %v, want only the pod's own", a, got.Pools)
	}
}

// TestServiceNotServable records a Warning Event on a Service nicpool cannot
// serve (a malformed frontend address) and builds nothing for it.
func TestServiceNotServable(t *testing.T) {
	ctx := context.Background()
	b := newSvcBed(t, "svc-bad", "10.53.0.0/16", "10.53.0.0/24", true, nil)
	svc := b.service("bad", LoadBalancerClass, true)
	svc.Annotations[AnnotationLBIPv4] = "10.53.0.999"
	b.create(t, svc)
	eventually(t, 30*time.Second, func() string {
		var list eventsv1.EventList
		if err := env.Client.List(ctx, &list, client.InNamespace(b.ns)); err != nil {
			return err.Error()
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == "Service" && e.Regarding.Name == "bad" && e.Reason == "InvalidService" && e.Type == corev1.EventTypeWarning {
				return ""
			}
		}
		return fmt.Sprintf("no InvalidService event on the Service among %d events", len(list.Items))
	})
	got, err := getService("bad", b.ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Status.LoadBalancer.Ingress) > 0 || got.Annotations[AnnotationServiceBackendPool] != "" || lbOf(b.s, "svc-bad-internal") != nil {
		t.Errorf("an unservable Service got ingress %v, pool %q or a load balancer", got.Status.LoadBalancer.Ingress, got.Annotations[AnnotationServiceBackendPool])
	}
	if err := env.Client.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		if _, err := getService("bad", b.ns); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("service still there: %v", err)
		}
		return ""
	})
}

// TestServiceDeletedMidUpdate deletes a public Service right after the NIC
// write that adds a new endpoint to its pool, before that pass's status
// write: no rule, probe, frontend, backend membership or created public IP
// is left.
func TestServiceDeletedMidUpdate(t *testing.T) {
	ctx := context.Background()
	var once sync.Once
	var armed chan struct{}
	var svcKey client.ObjectKey
	tweak := func(r *PoolReconciler) {
		r.afterNICWrite = func(string) error {
			select {
			case <-armed:
			default:
				return nil
			}
			once.Do(func() {
				_ = env.Client.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: svcKey.Namespace, Name: svcKey.Name}})
			})
			return nil
		}
	}
	armed = make(chan struct{})
	b := newSvcBed(t, "svc-midway", "10.51.0.0/16", "10.51.0.0/24", true, tweak)
	n0, n1 := b.nodes[0], b.nodes[1]
	svcKey = client.ObjectKey{Namespace: b.ns, Name: "pub"}
	b.create(t, b.service("pub", LoadBalancerClass, false))
	b.setEndpoints(t, "pub", endpoint{b.ips[n0][0], n0, true})
	eventually(t, 60*time.Second, func() string { return servedAs(b.s, b.ns, "pub", "svc-midway", b.ips[n0][0]) })
	svc, _ := getService("pub", b.ns)
	key := serviceKey(svc)
	names, err := newServiceLBs(b.opts.ServiceLB)
	if err != nil {
		t.Fatal(err)
	}
	if !publicIPExists(t, b.s, names.publicIPID(createdPIPName(svc))) {
		t.Fatalf("no public IP created for the public Service")
	}
	close(armed)
	b.setEndpoints(t, "pub", endpoint{b.ips[n0][0], n0, true}, endpoint{b.ips[n1][0], n1, true}, endpoint{b.ips[n0][1], n0, true})
	eventually(t, 60*time.Second, func() string { return leftNothing(b.s, b.ns, "pub", key) })
	if l := lbOf(b.s, "svc-midway"); l != nil {
		t.Errorf("the public load balancer outlived its last Service: %+v", l)
	}
}

// TestServiceOperatorRestartMidUpdate kills the operator between a NIC
// write that changes a Service's pool and its status write, changes the
// endpoints while no operator runs, and checks that the next operator
// converges: the pool holds exactly the ready endpoints, and pools' status
// agrees with the NICs.
func TestServiceOperatorRestartMidUpdate(t *testing.T) {
	var crash sync.Once
	crashed := make(chan struct{})
	armed := make(chan struct{})
	tweak := func(r *PoolReconciler) {
		r.afterNICWrite = func(string) error {
			select {
			case <-armed:
			default:
				return nil
			}
			err := error(nil)
			crash.Do(func() { err = errCrash; close(crashed) })
			return err
		}
	}
	b := newSvcBed(t, "svc-restart", "10.52.0.0/16", "10.52.0.0/24", true, tweak)
	n0, n1 := b.nodes[0], b.nodes[1]
	b.create(t, b.service("web", LoadBalancerClass, true))
	b.setEndpoints(t, "web", endpoint{b.ips[n0][0], n0, true})
	eventually(t, 60*time.Second, func() string { return servedAs(b.s, b.ns, "web", "svc-restart-internal", b.ips[n0][0]) })

	close(armed)
	b.setEndpoints(t, "web", endpoint{b.ips[n0][0], n0, true}, endpoint{b.ips[n1][0], n1, true})
	select {
	case <-crashed:
	case <-time.After(60 * time.Second): // generous: one pool pass under CI load
		t.Fatal("no NIC write for the new endpoint")
	}
	// The pass ended as a crash would; stop that operator now, as kill -9
	// would, before its next pass.
	b.op.stop()
	b.setEndpoints(t, "web", endpoint{b.ips[n1][0], n1, true}, endpoint{b.ips[n1][1], n1, true})
	startOperator(t, b.s, b.opts, nil)
	eventually(t, 60*time.Second, func() string {
		return servedAs(b.s, b.ns, "web", "svc-restart-internal", b.ips[n1][0], b.ips[n1][1])
	})
	for i, node := range b.nodes {
		eventually(t, 30*time.Second, func() string { return statusMatchesNIC(b.s, lookPool(node), nicID(i), 3) })
	}
	eventually(t, 30*time.Second, func() string {
		if st := attachState(lookPool(n0), b.ips[n0][0]); st != nil {
			return fmt.Sprintf("%s left the Service; its status still says %+v", b.ips[n0][0], st)
		}
		return ""
	})
}
