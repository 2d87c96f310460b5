package testbed

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// Rows of the connectivity matrix for pod attachments (docs/pod-attachments.md): pods
// put in an internal load balancer's backend pool and given a public IP by annotation,
// with nicpool's operator applying them to the pods' IP configurations.

// podFrontend is the internal frontend of the pods' load balancer, in the nodes' subnet
// and far above the addresses nicpool hands out.
const podFrontend = "10.240.255.201"

// Ports of lb-pods' second rule, which shows how it spreads new flows: the
// frontend's podSpreadPort goes to each backend's podSpreadPort, where a server
// answers with the backend's own address, while a TCP probe on podHealthPort
// decides which backends get new flows.
const (
	podSpreadPort = 7781
	podHealthPort = 7780
)

// PodRowsSetup is what SetUpPodRows created.
type PodRowsSetup struct {
	// PublicIP is the address of the public IP the operator created for the pod.
	PublicIP string
	pubPod   *Pod
	lbPods   []*Pod
	failing  *Pod
}

// AnnotatePod sets (value != "") or removes annotation key on pod p's Pod object, as
// kubectl annotate does.
func (tb *Testbed) AnnotatePod(ctx context.Context, p *Pod, key, value string) error {
	obj := &corev1.Pod{}
	if err := tb.Env.Client.Get(ctx, p.Key(), obj); err != nil {
		return fmt.Errorf("get pod %s: %w", p.Key(), err)
	}
	base := obj.DeepCopy()
	if value == "" {
		delete(obj.Annotations, key)
	} else {
		if obj.Annotations == nil {
			obj.Annotations = map[string]string{}
		}
		obj.Annotations[key] = value
	}
	if err := tb.Env.Client.Patch(ctx, obj, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("annotate pod %s: %w", p.Key(), err)
	}
	return nil
}

// WaitAttachment waits until the operator answered the current spec of vm's pool and
// done holds for ip's entry in status.attachments (nil: no entry, the IP configuration
// carries nothing), then until the fabric enforces armsim's state. It returns the entry.
func (tb *Testbed) WaitAttachment(ctx context.Context, vm *VM, ip string, done func(*v1.IPAttachmentStatus) bool) (*v1.IPAttachmentStatus, error) {
	for {
		pool, err := tb.Pool(ctx, vm)
		if err != nil {
			return nil, err
		}
		var st *v1.IPAttachmentStatus
		for i := range pool.Status.Attachments {
			if string(pool.Status.Attachments[i].IP) == ip {
				st = &pool.Status.Attachments[i]
			}
		}
		if pool.Status.AttachmentsObservedGeneration >= pool.Generation && done(st) {
			if err := tb.WaitFabric(ctx); err != nil {
				return nil, err
			}
			return st, tb.FabricError()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the attachment of %s on %s (status %+v, observed generation %d of %d): %w",
				ip, vm.Name, st, pool.Status.AttachmentsObservedGeneration, pool.Generation, ctx.Err())
		case <-time.After(100 * time.Millisecond): // polling the API server
		}
	}
}

// AttachmentApplied is a WaitAttachment condition: the request is applied.
func AttachmentApplied(st *v1.IPAttachmentStatus) bool {
	return st != nil && st.State == v1.AttachmentApplied
}

// AttachmentGone is a WaitAttachment condition: the IP configuration carries nothing.
func AttachmentGone(st *v1.IPAttachmentStatus) bool { return st == nil }

// SetUpPodRows creates, through the SDK, load balancer "lb-pods" with frontend
// podFrontend and backend pool "pods": rule ProbePort to ProbePort (TCP probe on
// ProbePort) and rule podSpreadPort to podSpreadPort (TCP probe on podHealthPort).
// It annotates lbPods and failing to join that pool and pubPod with public-ip
// "create", and starts in lbPods and failing a server on podSpreadPort answering
// with the pod's address, in lbPods only a listener on podHealthPort. It waits until
// the operator applied it all, the fabric enforces it, lbPods passed their probes
// and failing failed them. Probe servers must run in lbPods (ProbePort), not in
// failing.
func (tb *Testbed) SetUpPodRows(ctx context.Context, pubPod *Pod, lbPods []*Pod, failing *Pod) (*PodRowsSetup, error) {
	f, err := tb.ARM()
	if err != nil {
		return nil, err
	}
	rg := "/subscriptions/" + SubscriptionID + "/resourceGroups/" + ResourceGroup + "/providers/Microsoft.Network/"
	lbID := rg + "loadBalancers/lb-pods"
	lb := demoLB(rg, lbID)
	lb.Properties.FrontendIPConfigurations[0].Properties.PrivateIPAddress = to.Ptr(podFrontend)
	lb.Properties.BackendAddressPools[0].Name = to.Ptr("pods")
	lb.Properties.LoadBalancingRules[0].Properties.BackendAddressPool.ID = to.Ptr(lbID + "/backendAddressPools/pods")
	spread := InternalLB(InternalLBSpec{RG: rg, ID: lbID, Frontend: podFrontend, Pool: "pods", Probe: "health", Rule: "spread",
		FrontendPort: podSpreadPort, BackendPort: podSpreadPort, ProbePort: podHealthPort})
	lb.Properties.Probes = append(lb.Properties.Probes, spread.Properties.Probes...)
	lb.Properties.LoadBalancingRules = append(lb.Properties.LoadBalancingRules, spread.Properties.LoadBalancingRules...)
	p, err := f.NewLoadBalancersClient().BeginCreateOrUpdate(ctx, ResourceGroup, "lb-pods", lb, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, azurePoll)
	}
	if err != nil {
		return nil, fmt.Errorf("create load balancer: %w", err)
	}
	members := append(append([]*Pod{}, lbPods...), failing)
	for _, pod := range members {
		if err := tb.StartServer(ctx, pod.NS, podSpreadPort, func(local, _ string) string { return local }); err != nil {
			return nil, err
		}
		if pod == failing {
			continue
		}
		if err := tb.StartServer(ctx, pod.NS, podHealthPort, func(_, remote string) string { return remote }); err != nil {
			return nil, err
		}
	}
	for _, pod := range members {
		if err := tb.AnnotatePod(ctx, pod, v1.AnnotationLoadBalancerBackendPools, lbID+"/backendAddressPools/pods"); err != nil {
			return nil, err
		}
	}
	if err := tb.AnnotatePod(ctx, pubPod, v1.AnnotationPublicIP, v1.PublicIPCreate); err != nil {
		return nil, err
	}
	// The pods may already be Applied with other attachments (a Service's backend
	// pools): wait for the ones asked for here.
	inPool := func(st *v1.IPAttachmentStatus) bool {
		return AttachmentApplied(st) && slices.ContainsFunc(st.LoadBalancerBackendAddressPools, func(id string) bool {
			return strings.EqualFold(id, lbID+"/backendAddressPools/pods")
		})
	}
	if _, err := tb.WaitAttachment(ctx, failing.VM, failing.IP, inPool); err != nil {
		return nil, err
	}
	if err := tb.WaitLBBackend(ctx, "lb-pods", failing.IP, false); err != nil {
		return nil, err
	}
	for _, pod := range lbPods {
		if _, err := tb.WaitAttachment(ctx, pod.VM, pod.IP, inPool); err != nil {
			return nil, err
		}
		if err := tb.WaitLBBackend(ctx, "lb-pods", pod.IP, true); err != nil {
			return nil, err
		}
	}
	st, err := tb.WaitAttachment(ctx, pubPod.VM, pubPod.IP, func(st *v1.IPAttachmentStatus) bool {
		return AttachmentApplied(st) && st.CreatedPublicIPAddress != "" && strings.EqualFold(st.PublicIPAddress, st.CreatedPublicIPAddress)
	})
	if err != nil {
		return nil, err
	}
	pip, err := f.NewPublicIPAddressesClient().Get(ctx, ResourceGroup, path.Base(st.PublicIPAddress), nil)
	if err != nil {
		return nil, fmt.Errorf("get the public ip created for pod %s: %w", pubPod.Name, err)
	}
	if pip.Properties.IPAddress == nil {
		return nil, fmt.Errorf("the public ip created for pod %s has no address", pubPod.Name)
	}
	return &PodRowsSetup{PublicIP: *pip.Properties.IPAddress, pubPod: pubPod, lbPods: lbPods, failing: failing}, nil
}

// PodPaths are the rows for a SetUpPodRows: the internet reaches the pod at its public
// IP and the pod reaches the internet as it (not SNATed to its node), and the peered
// VNet reaches the pods' internal load balancer with its own address kept.
func (tb *Testbed) PodPaths(s *PodRowsSetup) []Path {
	peer, inet := tb.Sites["peer"], tb.Sites["internet"]
	return []Path{
		{Name: "internet to pod public IP", From: inet.NS, FromName: "internet", To: s.PublicIP, ToName: s.pubPod.Name, WantSeen: inet.HostIP},
		{Name: "pod with public IP to inet", From: s.pubPod.NS, FromName: s.pubPod.Name, To: inet.HostIP, ToName: "internet", WantSeen: s.PublicIP},
		{Name: "peer VNet to pods' int. LB", From: peer.NS, FromName: "peer-vnet", To: podFrontend, ToName: "lb-pods", WantSeen: peer.HostIP},
	}
}

// SpreadResult is how n new flows from the peered VNet to lb-pods' spreading rule
// fell on its backends.
type SpreadResult struct {
	// Flows is how many flows were opened; Answered counts them per backend IP.
	Flows    int
	Answered map[string]int
	Err      error
	healthy  []*Pod
	failing  *Pod
}

// OK reports whether every flow was answered, each pod passing the probe got some
// and the pod failing it none.
func (r SpreadResult) OK() bool {
	if r.Err != nil || r.Answered[r.failing.IP] != 0 {
		return false
	}
	sum := 0
	for _, p := range r.healthy {
		if r.Answered[p.IP] == 0 {
			return false
		}
		sum += r.Answered[p.IP]
	}
	return sum == r.Flows
}

// String is the result as a line of the demo's output.
func (r SpreadResult) String() string {
	var parts []string
	for _, p := range r.healthy {
		parts = append(parts, fmt.Sprintf("%s %d", p.Name, r.Answered[p.IP]))
	}
	parts = append(parts, fmt.Sprintf("%s (failing its probe) %d", r.failing.Name, r.Answered[r.failing.IP]))
	verdict := "OK"
	if !r.OK() {
		verdict = fmt.Sprintf("FAIL (answers %v, error %v)", r.Answered, r.Err)
	}
	return fmt.Sprintf("peer-vnet -> lb-pods %s:%d, %d new flows answered by: %s  %s\n",
		podFrontend, podSpreadPort, r.Flows, strings.Join(parts, ", "), verdict)
}

// PodSpread opens n new flows from the peered VNet to lb-pods' spreading rule and
// counts which pod answered each. With two pods passing the probe, each gets at least
// one of 20 flows unless the spreading is broken (chance 2^-19 otherwise).
func (tb *Testbed) PodSpread(ctx context.Context, s *PodRowsSetup, n int) SpreadResult {
	r := SpreadResult{Flows: n, Answered: map[string]int{}, healthy: s.lbPods, failing: s.failing}
	peer := tb.Sites["peer"]
	for i := 0; i < n; i++ {
		backend, err := ProbeAt(ctx, peer.NS, podFrontend, podSpreadPort)
		if err != nil {
			r.Err = fmt.Errorf("flow %d: %w", i, err)
			return r
		}
		r.Answered[backend]++
	}
	return r
}
