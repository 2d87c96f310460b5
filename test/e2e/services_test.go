package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nicpool/nicpool/controllers"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// svcLBName is the public load balancer the operator serves Services with in
// these tests; the internal one is svcLBName-internal.
const svcLBName = "svc"

// serviceLBArgs are the operator flags that turn Services of type
// LoadBalancer on, with internal frontends on the nodes' subnet.
func serviceLBArgs() []string {
	subnet := "/subscriptions/" + testbed.SubscriptionID + "/resourceGroups/" + testbed.ResourceGroup +
		"/providers/Microsoft.Network/virtualNetworks/vnet-e2e/subnets/nodes"
	return []string{"--service-load-balancers", "--service-lb-subnet=" + subnet, "--service-lb-name=" + svcLBName}
}

// lbService is a Service of type LoadBalancer with nicpool's class, port 80
// to the pods' 8080, selecting app=app.
func lbService(name, app string, internal bool) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: testbed.PodNamespace, Name: name, Annotations: map[string]string{}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(controllers.LoadBalancerClass),
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}
	if internal {
		svc.Annotations[controllers.AnnotationLBInternal] = "true"
	}
	return svc
}

// waitIngress waits for the Service's frontend address.
func waitIngress(ctx context.Context, t *testing.T, tb *testbed.Testbed, name string) string {
	t.Helper()
	deadline := time.Now().Add(azureWait)
	for time.Now().Before(deadline) {
		var svc corev1.Service
		if err := tb.Env.Client.Get(ctx, client.ObjectKey{Namespace: testbed.PodNamespace, Name: name}, &svc); err == nil &&
			len(svc.Status.LoadBalancer.Ingress) == 1 {
			return svc.Status.LoadBalancer.Ingress[0].IP
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("service %s got no frontend address within %s", name, azureWait)
	return ""
}

// waitPoolMembers waits until the backend pool of the Service's frontend on
// load balancer lb holds exactly ips, and the fabric enforces it.
func waitPoolMembers(ctx context.Context, t *testing.T, tb *testbed.Testbed, lb, svcName string, ips ...string) {
	t.Helper()
	var svc corev1.Service
	if err := tb.Env.Client.Get(ctx, client.ObjectKey{Namespace: testbed.PodNamespace, Name: svcName}, &svc); err != nil {
		t.Fatal(err)
	}
	key := "svc-" + strings.ReplaceAll(string(svc.UID), "-", "")
	want := slices.Clone(ips)
	slices.SortFunc(want, func(a, b string) int { return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b)) })
	deadline := time.Now().Add(azureWait)
	got := []string{}
	for time.Now().Before(deadline) {
		got = nil
		for _, l := range tb.Sim.Snapshot().Network.LoadBalancers {
			if strings.HasSuffix(l.ID, "/loadbalancers/"+lb) {
				for _, m := range l.Pools[key] {
					got = append(got, m.String())
				}
			}
		}
		if slices.Equal(got, want) {
			wctx, cancel := context.WithTimeout(ctx, azureWait)
			defer cancel()
			if err := tb.WaitFabric(wctx); err != nil {
				t.Fatal(err)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("backend pool of %s on %s holds %v, want %v", svcName, lb, got, want)
}

// spreadOver opens n new flows from ns to frontend:80 and counts them per
// answering pod, failing unless every pod saw client as the source.
func spreadOver(ctx context.Context, t *testing.T, ns *testbed.Namespace, frontend, client string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		line, err := testbed.ProbeAt(ctx, ns, frontend, 80)
		if err != nil {
			t.Fatalf("flow %d to %s:80: %v", i, frontend, err)
		}
		backend, seen, _ := strings.Cut(line, " ")
		if seen != client {
			t.Fatalf("pod %s saw client %s, want %s (no SNAT on the load balancer's path)", backend, seen, client)
		}
		got[strings.TrimSuffix(backend, ":8080")]++
	}
	return got
}

// TestServiceLoadBalancerWithTraffic serves an internal and a public Service
// of type LoadBalancer with nicpool's class over two pods on two VMs, with
// the operator, the agents, kube-controller-manager's EndpointSlice
// controller and the simulated VNet's fabric running:
//   - from on-premises through the internal frontend, and from the internet
//     namespace through the public one, new flows reach both pods, each pod
//     seeing the client's own address (not a node's, not the frontend's);
//   - a pod turning not ready leaves both backend pools (the EndpointSlice
//     controller marks it not ready) and gets no new flows; ready again, it
//     gets them again;
//   - deleting the Services leaves nothing on the NICs or load balancers and
//     the frontends answer no more.
func TestServiceLoadBalancerWithTraffic(t *testing.T) {
	tb := newTestbed(t, 2, nil, serviceLBArgs())
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	if _, err := tb.StartEndpointSliceController(ctx); err != nil {
		t.Fatal(err)
	}
	onprem, inet := tb.Sites["onprem"], tb.Sites["internet"]
	web0 := startPods(t, tb, tb.VMs[0], "svcweb", 1, 1)[0]
	web1 := startPods(t, tb, tb.VMs[1], "svcwebb", 1, 1)[0]
	labels := map[string]string{"app": "svcweb"}
	for _, p := range []*testbed.Pod{web0, web1} {
		if err := tb.StartServer(ctx, p.NS, 8080, func(local, remote string) string { return local + " " + remote }); err != nil {
			t.Fatal(err)
		}
		if err := tb.SetPodServing(ctx, p, labels, true); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*corev1.Service{lbService("web-int", "svcweb", true), lbService("web-pub", "svcweb", false)} {
		if err := tb.Env.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	internal, public := waitIngress(ctx, t, tb, "web-int"), waitIngress(ctx, t, tb, "web-pub")
	if a := netip.MustParseAddr(internal); !netip.MustParsePrefix("10.0.0.0/8").Contains(a) {
		t.Fatalf("internal frontend %s is not a VNet address", internal)
	}
	waitPoolMembers(ctx, t, tb, svcLBName+"-internal", "web-int", web0.IP, web1.IP)
	waitPoolMembers(ctx, t, tb, svcLBName, "web-pub", web0.IP, web1.IP)
	for _, lb := range []string{svcLBName + "-internal", svcLBName} {
		for _, p := range []*testbed.Pod{web0, web1} {
			wctx, cancel := context.WithTimeout(ctx, azureWait)
			err := tb.WaitLBBackend(wctx, lb, p.IP, true)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	both := func(got map[string]int, what string) {
		t.Helper()
		// 30 flows over two pods: each gets some unless spreading is broken
		// (chance 2^-29 otherwise).
		if got[web0.IP] == 0 || got[web1.IP] == 0 || len(got) != 2 {
			t.Fatalf("%s: flows per pod %v, want some on each of %s and %s", what, got, web0.IP, web1.IP)
		}
	}
	both(spreadOver(ctx, t, onprem.NS, internal, onprem.HostIP, 30), "on-premises to the internal Service")
	both(spreadOver(ctx, t, inet.NS, public, inet.HostIP, 30), "internet to the public Service")

	// Not ready: out of both pools, no new flows.
	if err := tb.SetPodServing(ctx, web0, labels, false); err != nil {
		t.Fatal(err)
	}
	waitPoolMembers(ctx, t, tb, svcLBName+"-internal", "web-int", web1.IP)
	waitPoolMembers(ctx, t, tb, svcLBName, "web-pub", web1.IP)
	if got := spreadOver(ctx, t, onprem.NS, internal, onprem.HostIP, 10); got[web1.IP] != 10 {
		t.Fatalf("flows with %s not ready: %v, want all on %s", web0.IP, got, web1.IP)
	}
	if got := spreadOver(ctx, t, inet.NS, public, inet.HostIP, 10); got[web1.IP] != 10 {
		t.Fatalf("flows with %s not ready: %v, want all on %s", web0.IP, got, web1.IP)
	}
	if err := tb.SetPodServing(ctx, web0, labels, true); err != nil {
		t.Fatal(err)
	}
	waitPoolMembers(ctx, t, tb, svcLBName+"-internal", "web-int", web0.IP, web1.IP)

	// Delete: nothing left, the frontends answer no more.
	for _, name := range []string{"web-int", "web-pub"} {
		if err := tb.Env.Client.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: testbed.PodNamespace, Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(azureWait)
	for {
		left := ""
		for _, name := range []string{"web-int", "web-pub"} {
			err := tb.Env.Client.Get(ctx, client.ObjectKey{Namespace: testbed.PodNamespace, Name: name}, &corev1.Service{})
			if !apierrors.IsNotFound(err) {
				left = fmt.Sprintf("service %s still there (%v)", name, err)
			}
		}
		if n := len(tb.Sim.Snapshot().Network.LoadBalancers); left == "" && n > 0 {
			left = fmt.Sprintf("%d load balancers left", n)
		}
		if left == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	wctx, wcancel := context.WithTimeout(ctx, azureWait)
	defer wcancel()
	if err := tb.WaitFabric(wctx); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []struct {
		ns *testbed.Namespace
		ip string
	}{{onprem.NS, internal}, {inet.NS, public}} {
		if line, err := testbed.ProbeAt(ctx, dst.ns, dst.ip, 80); err == nil {
			t.Errorf("frontend %s still answers after the Service was deleted: %q", dst.ip, line)
		}
	}
	for _, vm := range tb.VMs {
		pool, err := tb.Pool(ctx, vm)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range pool.Status.Attachments {
			if st.Attached() {
				t.Errorf("pool %s still reports %+v", vm.Name, st)
			}
		}
	}
}
