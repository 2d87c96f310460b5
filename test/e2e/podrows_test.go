package e2e

import (
	"context"
	"net"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	v1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// podRows is TestPodAttachmentsWithTraffic's world: a testbed with nicpool running and
// the SDK clients an administrator uses.
type podRows struct {
	tb  *testbed.Testbed
	arm *armnetwork.ClientFactory
	ctx context.Context
	rg  string
}

// annotate sets (value != "") or removes the pod attachment annotation key of pod p; the
// agent watches the pods of its node.
func (r *podRows) annotate(t *testing.T, p *testbed.Pod, key, value string) {
	t.Helper()
	if err := r.tb.AnnotatePod(r.ctx, p, key, value); err != nil {
		t.Fatal(err)
	}
}

// attachment waits until the operator answered the pool's current spec for ip and done
// holds for ip's status entry, then until the fabric enforces armsim's state. The
// agent's spec write and the operator's pass take well under a second on an idle
// machine; azureWait covers a loaded one.
func (r *podRows) attachment(t *testing.T, vm *testbed.VM, ip, what string, done func(*v1.IPAttachmentStatus) bool) *v1.IPAttachmentStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, azureWait)
	defer cancel()
	st, err := r.tb.WaitAttachment(ctx, vm, ip, done)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return st
}

var applied, detached = testbed.AttachmentApplied, testbed.AttachmentGone

// ipConfig returns the IP configuration of vm's NIC carrying ip, nil if none does.
func (r *podRows) ipConfig(t *testing.T, vm *testbed.VM, ip string) *armnetwork.InterfaceIPConfiguration {
	t.Helper()
	nic, err := r.arm.NewInterfacesClient().Get(r.ctx, testbed.ResourceGroup, vm.Name+"-nic", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range nic.Properties.IPConfigurations {
		if c.Properties.PrivateIPAddress != nil && *c.Properties.PrivateIPAddress == ip {
			return c
		}
	}
	return nil
}

// requireClean fails unless ip's IP configuration on vm's NIC (if it still exists) is in
// no backend pool and has no public IP.
func (r *podRows) requireClean(t *testing.T, vm *testbed.VM, ip, what string) {
	t.Helper()
	c := r.ipConfig(t, vm, ip)
	if c != nil && (len(c.Properties.LoadBalancerBackendAddressPools) > 0 || c.Properties.PublicIPAddress != nil) {
		t.Fatalf("%s: IP configuration %s of %s still carries backend pools %d, public IP %v", what, ip, vm.Name,
			len(c.Properties.LoadBalancerBackendAddressPools), c.Properties.PublicIPAddress != nil)
	}
}

// publicAddress returns the address of the public IP resource id.
func (r *podRows) publicAddress(t *testing.T, id string) string {
	t.Helper()
	got, err := r.arm.NewPublicIPAddressesClient().Get(r.ctx, testbed.ResourceGroup, path.Base(id), nil)
	if err != nil {
		t.Fatalf("get public ip %s: %v", id, err)
	}
	if got.Properties.IPAddress == nil {
		t.Fatalf("public ip %s has no address", id)
	}
	return *got.Properties.IPAddress
}

func (r *podRows) reach(t *testing.T, what string, n *testbed.Namespace, ip string, port int, wantSeen string) {
	t.Helper()
	(&azureEnv{tb: r.tb, ctx: r.ctx}).reach(t, what, n, ip, port, wantSeen)
}

func (r *podRows) blocked(t *testing.T, what string, n *testbed.Namespace, ip string, port int) {
	t.Helper()
	(&azureEnv{tb: r.tb, ctx: r.ctx}).blocked(t, what, n, ip, port)
}

// TestPodAttachmentsWithTraffic proves the pod attachment annotations with real traffic
// through the simulated VNet, nicpool's operator and agents running:
//   - a pod annotated with a public IP (one the administrator created, then "create") is
//     reached from the internet at it and goes out to the internet as it; with the
//     annotation removed the public IP no longer reaches the pod and its egress is
//     SNATed to the node's primary IP again;
//   - an internal load balancer whose backend pool holds two pods (on two nodes) spreads
//     new flows from the peered VNet over both, keeps the client's address, and sends no
//     new flow to a pod failing the health probe;
//   - a deleted pod leaves no attachment on the NIC, an operator-created public IP is
//     deleted, and the pod's IP is handed to no other pod while its configuration still
//     carries an attachment.
func TestPodAttachmentsWithTraffic(t *testing.T) {
	tb := newTestbed(t, 2, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	f, err := tb.ARM()
	if err != nil {
		t.Fatal(err)
	}
	r := &podRows{tb: tb, arm: f, ctx: ctx,
		rg: "/subscriptions/" + testbed.SubscriptionID + "/resourceGroups/" + testbed.ResourceGroup + "/providers/Microsoft.Network/"}
	vm0, vm1 := tb.VMs[0], tb.VMs[1]
	inet, peer := tb.Sites["internet"], tb.Sites["peer"]
	pub := startPods(t, tb, vm0, "pub", 1, 1)[0]
	web0 := startPods(t, tb, vm0, "web", 1, 1)[0]
	web1 := startPods(t, tb, vm1, "webb", 1, 1)[0]
	live := []*testbed.Pod{pub, web0, web1}
	if err := tb.StartProbeServers(ctx, live...); err != nil {
		t.Fatal(err)
	}

	t.Run("public IP", func(t *testing.T) {
		p, err := f.NewPublicIPAddressesClient().BeginCreateOrUpdate(ctx, testbed.ResourceGroup, "pip-pod", armnetwork.PublicIPAddress{
			Location: to.Ptr("westeurope"), SKU: &armnetwork.PublicIPAddressSKU{Name: to.Ptr(armnetwork.PublicIPAddressSKUNameStandard)},
			Properties: &armnetwork.PublicIPAddressPropertiesFormat{PublicIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodStatic)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		pip, err := p.PollUntilDone(ctx, fastPoll)
		if err != nil {
			t.Fatal(err)
		}
		public := *pip.Properties.IPAddress
		r.reach(t, "pod without a public IP to the internet (node SNAT)", pub.NS, inet.HostIP, testbed.ProbePort, vm0.PrimaryIP)

		r.annotate(t, pub, v1.AnnotationPublicIP, *pip.ID)
		st := r.attachment(t, vm0, pub.IP, "public IP attached", applied)
		if !strings.EqualFold(st.PublicIPAddress, *pip.ID) {
			t.Fatalf("status carries public IP %q, want %s", st.PublicIPAddress, *pip.ID)
		}
		r.reach(t, "internet to the pod's public IP", inet.NS, public, testbed.ProbePort, inet.HostIP)
		r.reach(t, "pod with a public IP to the internet (seen as the public IP)", pub.NS, inet.HostIP, testbed.ProbePort, public)
		r.reach(t, "another pod on the node to the internet (still the node's SNAT)", web0.NS, inet.HostIP, testbed.ProbePort, vm0.PrimaryIP)

		r.annotate(t, pub, v1.AnnotationPublicIP, "")
		r.attachment(t, vm0, pub.IP, "public IP annotation removed", detached)
		r.requireClean(t, vm0, pub.IP, "public IP annotation removed")
		r.blocked(t, "internet to the public IP once the annotation is removed", inet.NS, public, testbed.ProbePort)
		r.reach(t, "pod to the internet once the annotation is removed (node SNAT again)", pub.NS, inet.HostIP, testbed.ProbePort, vm0.PrimaryIP)

		// "create": the operator makes the public IP; it serves the pod the same way.
		r.annotate(t, pub, v1.AnnotationPublicIP, v1.PublicIPCreate)
		st = r.attachment(t, vm0, pub.IP, "created public IP attached", applied)
		if st.CreatedPublicIPAddress == "" || !strings.EqualFold(st.PublicIPAddress, st.CreatedPublicIPAddress) {
			t.Fatalf("status = %+v, want the created public IP attached", st)
		}
		created := r.publicAddress(t, st.PublicIPAddress)
		r.reach(t, "internet to the pod's created public IP", inet.NS, created, testbed.ProbePort, inet.HostIP)
		r.reach(t, "pod with a created public IP to the internet", pub.NS, inet.HostIP, testbed.ProbePort, created)
	})

	t.Run("internal load balancer over pods", func(t *testing.T) {
		const frontend, fePort, bePort, healthPort = "10.240.255.210", 80, 7781, 7780
		lbID := r.rg + "loadBalancers/lb-pods"
		pool := lbID + "/backendAddressPools/web"
		lb := testbed.InternalLB(testbed.InternalLBSpec{RG: r.rg, ID: lbID, Frontend: frontend, Pool: "web", Probe: "health", Rule: "web",
			FrontendPort: fePort, BackendPort: bePort, ProbePort: healthPort})
		p, err := f.NewLoadBalancersClient().BeginCreateOrUpdate(ctx, testbed.ResourceGroup, "lb-pods", lb, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, fastPoll)
		}
		if err != nil {
			t.Fatal(err)
		}
		health := map[string]net.Listener{}
		for _, pod := range []*testbed.Pod{web0, web1} {
			if err := tb.StartServer(ctx, pod.NS, bePort, func(local, remote string) string { return local + " " + remote }); err != nil {
				t.Fatal(err)
			}
			l, err := tb.Listen(ctx, pod.NS, healthPort)
			if err != nil {
				t.Fatal(err)
			}
			go acceptAndClose(l)
			health[pod.IP] = l
			r.annotate(t, pod, v1.AnnotationLoadBalancerBackendPools, pool)
		}
		for _, pod := range []*testbed.Pod{web0, web1} {
			st := r.attachment(t, pod.VM, pod.IP, "pod in the backend pool", applied)
			if !slices.ContainsFunc(st.LoadBalancerBackendAddressPools, func(s string) bool { return strings.EqualFold(s, pool) }) {
				t.Fatalf("status of %s = %+v, want backend pool %s", pod.Name, st, pool)
			}
		}
		waitBackend := func(ip string, healthy bool) {
			t.Helper()
			ctx, cancel := context.WithTimeout(ctx, azureWait)
			defer cancel()
			if err := tb.WaitLBBackend(ctx, "lb-pods", ip, healthy); err != nil {
				t.Fatal(err)
			}
		}
		waitBackend(web0.IP, true)
		waitBackend(web1.IP, true)
		spread := func(n int) map[string]int {
			t.Helper()
			got := map[string]int{}
			for i := 0; i < n; i++ {
				line, err := testbed.ProbeAt(ctx, peer.NS, frontend, fePort)
				if err != nil {
					t.Fatalf("flow %d from the peered VNet to the frontend: %v", i, err)
				}
				backend, client, _ := strings.Cut(line, " ")
				if client != peer.HostIP {
					t.Fatalf("pod %s saw client %s, want %s (Azure's load balancer keeps the client address)", backend, client, peer.HostIP)
				}
				got[backend]++
			}
			return got
		}
		// 40 flows over two backends: each gets at least one unless the spreading is
		// broken (chance 2^-39 otherwise).
		if got := spread(40); got[web0.IP] == 0 || got[web1.IP] == 0 || len(got) != 2 {
			t.Fatalf("flows per pod = %v, want some on each of %s and %s and nowhere else", got, web0.IP, web1.IP)
		}
		_ = health[web0.IP].Close()
		waitBackend(web0.IP, false)
		if got := spread(10); got[web1.IP] != 10 {
			t.Fatalf("flows per pod after %s failed its probe = %v, want all on %s", web0.IP, got, web1.IP)
		}
	})

	t.Run("deleted pod leaves no attachment", func(t *testing.T) {
		// pub holds an operator-created public IP, web1 a backend pool (on the other node).
		before, err := tb.Pool(ctx, vm0)
		if err != nil {
			t.Fatal(err)
		}
		var createdID string
		for _, s := range before.Status.Attachments {
			if string(s.IP) == pub.IP {
				createdID = s.CreatedPublicIPAddress
			}
		}
		if createdID == "" {
			t.Fatalf("pod %s holds no created public IP: %+v", pub.Name, before.Status.Attachments)
		}
		live = []*testbed.Pod{web0}
		for _, pod := range []*testbed.Pod{pub, web1} {
			if err := tb.DeletePod(ctx, pod); err != nil {
				t.Fatal(err)
			}
			// A new pod on the same node right away: if it gets the deleted pod's IP,
			// that IP's configuration must already be clean (detach before reuse).
			next, err := tb.StartPod(ctx, pod.VM, pod.Name+"-next")
			if err != nil {
				t.Fatal(err)
			}
			live = append(live, next)
			if next.IP == pod.IP {
				r.requireClean(t, pod.VM, pod.IP, "IP handed to a new pod")
			}
			r.attachment(t, pod.VM, pod.IP, "pod deleted", detached)
			r.requireClean(t, pod.VM, pod.IP, "pod deleted")
			p, err := tb.Pool(ctx, pod.VM)
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(azureWait)
			for slices.ContainsFunc(p.Spec.Attachments, func(a v1.IPAttachment) bool { return string(a.IP) == pod.IP }) {
				if time.Now().After(deadline) {
					t.Fatalf("spec of %s still has an attachment entry for %s after the detach", pod.VM.Name, pod.IP)
				}
				time.Sleep(100 * time.Millisecond) // polling the API server for the agent's cleanup
				if p, err = tb.Pool(ctx, pod.VM); err != nil {
					t.Fatal(err)
				}
			}
		}
		_, err = f.NewPublicIPAddressesClient().Get(ctx, testbed.ResourceGroup, path.Base(createdID), nil)
		if azure.Classify(err) != azure.KindNotFound {
			t.Fatalf("the public IP the operator created for the deleted pod: get returned %v, want not found", err)
		}
	})
	if err := tb.CheckInvariants(live, 250); err != nil {
		t.Error(err)
	}
}
