package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/attach"
	"github.com/nicpool/nicpool/internal/nicsync"
)

// attachTopology is one VM whose NIC is in ASG web, with an internal load
// balancer's backend pool, a free public IP (pip-free) and one held by the
// NIC's primary configuration (pip-node).
func attachTopology(vnet, subnet string) *armsim.Topology {
	topo := armsim.GenerateTopology(testSub, testRG, vnet, subnet, 1)
	topo.ApplicationSecurityGroups = []armsim.ResourceSpec{{ResourceGroup: testRG, Name: "web"}}
	topo.PublicIPAddresses = []armsim.ResourceSpec{{ResourceGroup: testRG, Name: "pip-free"}, {ResourceGroup: testRG, Name: "pip-node"}}
	topo.LoadBalancers = []armsim.LBSpec{{ResourceGroup: testRG, Name: "lb", BackendPools: []string{"be"},
		Frontends: []armsim.FrontendSpec{{Name: "fe", VNet: "vnet-0", Subnet: "nodes"}}}}
	topo.NICs[0].ApplicationSecurityGroups = []string{"web"}
	topo.NICs[0].PublicIP = "pip-node"
	return topo
}

func netID(typ, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/%s/%s", testSub, testRG, typ, name)
}

var (
	idWeb     = netID("applicationSecurityGroups", "web")
	idPool    = netID("loadBalancers", "lb") + "/backendAddressPools/be"
	idPIPFree = netID("publicIPAddresses", "pip-free")
	idPIPNode = netID("publicIPAddresses", "pip-node")
)

// setAttachments writes the agent's spec.attachments (and, when n >= 0,
// requestedIPCount) in one update.
func setAttachments(t *testing.T, name string, n int, entries ...nicpoolv1.IPAttachment) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pool := getPool(t, name)
		pool.Spec.Attachments = entries
		if n >= 0 {
			pool.Spec.RequestedIPCount = int32(n)
		}
		return env.Client.Update(context.Background(), pool)
	})
	if err != nil {
		t.Fatalf("write spec.attachments of %s: %v", name, err)
	}
}

func podAt(ns, name string) *nicpoolv1.PodReference {
	return &nicpoolv1.PodReference{Namespace: ns, Name: name, UID: "uid-" + name}
}

// configOf reads the NIC's IP configuration holding ip.
func configOf(t *testing.T, s *sim, id, ip string) attachment {
	t.Helper()
	nic, err := s.nics.GetNIC(context.Background(), id)
	if err != nil {
		t.Fatalf("read nic: %v", err)
	}
	for _, c := range nicsync.Configs(nic) {
		if c.IP == ip {
			return c.Att
		}
	}
	t.Fatalf("no configuration holds %s", ip)
	return attachment{}
}

func attachState(pool *nicpoolv1.NodeIPPool, ip string) *nicpoolv1.IPAttachmentStatus {
	for i := range pool.Status.Attachments {
		if string(pool.Status.Attachments[i].IP) == ip {
			return &pool.Status.Attachments[i]
		}
	}
	return nil
}

// settledAt reports "" when the pool's attachments are reported for its
// current generation and ip's entry is in state (state "" means no entry).
func settledAt(pool *nicpoolv1.NodeIPPool, ip, state string) string {
	if pool.Status.AttachmentsObservedGeneration < pool.Generation {
		return fmt.Sprintf("attachments observed at generation %d of %d", pool.Status.AttachmentsObservedGeneration, pool.Generation)
	}
	st := attachState(pool, ip)
	switch {
	case state == "" && st != nil:
		return fmt.Sprintf("%s still reported %s (%s %s)", ip, st.State, st.Reason, st.Message)
	case state != "" && st == nil:
		return fmt.Sprintf("%s not reported, want %s", ip, state)
	case state != "" && st.State != state:
		return fmt.Sprintf("%s is %s (%s: %s), want %s", ip, st.State, st.Reason, st.Message, state)
	}
	return ""
}

// podEvents lists the reasons of the Events recorded on a pod.
func podEvents(t *testing.T, ns, pod string) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatalf("list events: %v", err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Pod" && e.Regarding.Name == pod {
			out = append(out, e.Reason+": "+e.Note)
		}
	}
	return out
}

// TestAttachChangeDetach applies, changes and detaches a pod's attachments
// on a NIC in ASG web: new configurations inherit the NIC's ASG (Azure
// refuses them otherwise), the attachments ride in the pass's one NIC write
// with the additions, a "create" public IP is created, attached and deleted
// after the detach.
func TestAttachChangeDetach(t *testing.T) {
	ctx := context.Background()
	s := startSim(t, attachTopology("10.30.0.0/16", "10.30.0.0/24"))
	startOperator(t, s, testOptions(), nil)
	const node = "attach-0"
	createNode(t, node, providerID(0))
	setRequestWhenExists(t, node, 2)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool(node), nicID(0), 2) })
	pool := getPool(t, node)
	ip1, ip2 := string(pool.Status.IPs[0].IP), string(pool.Status.IPs[1].IP)
	if got := configOf(t, s, nicID(0), ip1); !attach.SameIDs(got.ASGs, []string{idWeb}) {
		t.Fatalf("a new configuration is in ASGs %v, want the NIC's [%s]", got.ASGs, idWeb)
	}

	// Attach, together with two more IPs: one NIC write.
	puts := s.srv.Stats().PutsByNIC[nicID(0)]
	setAttachments(t, node, 4, nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip1), Pod: podAt("default", "web-1"),
		ApplicationSecurityGroups:       []nicpoolv1.ApplicationSecurityGroupID{nicpoolv1.ApplicationSecurityGroupID(idWeb)},
		LoadBalancerBackendAddressPools: []nicpoolv1.BackendPoolID{nicpoolv1.BackendPoolID(idPool)}, PublicIPAddress: nicpoolv1.PublicIPRequest(idPIPFree)})
	eventually(t, 60*time.Second, func() string {
		p := lookPool(node)
		if msg := statusMatchesNIC(s, p, nicID(0), 4); msg != "" {
			return msg
		}
		return settledAt(p, ip1, nicpoolv1.AttachmentApplied)
	})
	if n := s.srv.Stats().PutsByNIC[nicID(0)] - puts; n != 1 {
		t.Errorf("%d NIC writes for two additions and one attachment, want 1", n)
	}
	if got := configOf(t, s, nicID(0), ip1); !got.Same(attachment{ASGs: []string{idWeb}, Pools: []string{idPool}, PublicIP: idPIPFree}) {
		t.Errorf("configuration of %s carries %+v", ip1, got)
	}
	if st, reason := condition(getPool(t, node), nicpoolv1.ConditionAttachmentsApplied); st != metav1.ConditionTrue {
		t.Errorf("AttachmentsApplied = %s/%s, want True", st, reason)
	}
	eventually(t, 30*time.Second, func() string {
		if ev := podEvents(t, "default", "web-1"); len(ev) == 0 || !strings.HasPrefix(ev[0], "AttachmentApplied") {
			return fmt.Sprintf("events on pod web-1: %v", ev)
		}
		return ""
	})

	// Change: the public IP becomes one the operator creates; ip2 joins the pool.
	setAttachments(t, node, -1,
		nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip1), Pod: podAt("default", "web-1"), PublicIPAddress: nicpoolv1.PublicIPCreate},
		nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip2), Pod: podAt("default", "web-2"), LoadBalancerBackendAddressPools: []nicpoolv1.BackendPoolID{nicpoolv1.BackendPoolID(idPool)}})
	created := createdPublicIPID(nicID(0), node, ip1, "uid-web-1")
	eventually(t, 60*time.Second, func() string {
		p := lookPool(node)
		if msg := settledAt(p, ip2, nicpoolv1.AttachmentApplied); msg != "" {
			return msg
		}
		if msg := settledAt(p, ip1, nicpoolv1.AttachmentApplied); msg != "" {
			return msg
		}
		if st := attachState(p, ip1); st.CreatedPublicIPAddress != created || !strings.EqualFold(st.PublicIPAddress, created) {
			return fmt.Sprintf("%s: public IP %s, created %s; want %s", ip1, st.PublicIPAddress, st.CreatedPublicIPAddress, created)
		}
		return ""
	})
	if got := configOf(t, s, nicID(0), ip1); !got.Same(attachment{ASGs: []string{idWeb}, PublicIP: created}) {
		t.Errorf("after the change %s carries %+v (the backend pool and pip-free must be gone)", ip1, got)
	}
	if !publicIPExists(t, s, created) {
		t.Fatalf("created public IP %s does not exist", created)
	}

	// Detach: the pods are gone, the agent's entries ask for nothing.
	setAttachments(t, node, -1, nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip1)}, nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip2)})
	eventually(t, 60*time.Second, func() string {
		p := lookPool(node)
		if msg := settledAt(p, ip1, ""); msg != "" {
			return msg
		}
		return settledAt(p, ip2, "")
	})
	for _, ip := range []string{ip1, ip2} {
		if got := configOf(t, s, nicID(0), ip); !got.Same(attachment{ASGs: []string{idWeb}}) {
			t.Errorf("after the detach %s carries %+v, want only the NIC's ASG", ip, got)
		}
	}
	if publicIPExists(t, s, created) {
		t.Errorf("created public IP %s survived the detach", created)
	}
	if _, ok := condition(getPool(t, node), nicpoolv1.ConditionAttachmentsApplied); ok != "" {
		t.Errorf("AttachmentsApplied still set (%s) with nothing asked", ok)
	}
	_ = ctx
}

// publicIPExists reports whether armsim holds the public IP.
func publicIPExists(t *testing.T, s *sim, id string) bool {
	t.Helper()
	for _, p := range s.srv.Snapshot().Network.PublicIPs {
		if strings.EqualFold(p.ID, id) {
			return true
		}
	}
	return false
}

// TestAttachmentRefused asks for a public IP that the NIC's primary holds:
// ARM refuses the write (PublicIPAddressInUse). The refusal is held against
// that request only: the pass writes again without it (the addition it
// carried is made), reports it Refused on the pool and on the pod, and
// retries it later rather than on every pass. A request ARM would refuse for
// another subscription or another ASG is refused before any write.
func TestAttachmentRefused(t *testing.T) {
	s := startSim(t, attachTopology("10.31.0.0/16", "10.31.0.0/24"))
	startOperator(t, s, testOptions(), nil)
	const node = "refuse-0"
	createNode(t, node, providerID(0))
	setRequestWhenExists(t, node, 2)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool(node), nicID(0), 2) })
	pool := getPool(t, node)
	ip1, ip2 := string(pool.Status.IPs[0].IP), string(pool.Status.IPs[1].IP)

	otherSub := strings.Replace(idPIPFree, testSub, "11111111-1111-1111-1111-111111111111", 1)
	setAttachments(t, node, 3,
		nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip1), Pod: podAt("default", "taken"), PublicIPAddress: nicpoolv1.PublicIPRequest(idPIPNode)},
		nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip2), Pod: podAt("default", "elsewhere"), PublicIPAddress: nicpoolv1.PublicIPRequest(otherSub),
			ApplicationSecurityGroups: []nicpoolv1.ApplicationSecurityGroupID{nicpoolv1.ApplicationSecurityGroupID(netID("applicationSecurityGroups", "db"))}})
	eventually(t, 60*time.Second, func() string {
		p := lookPool(node)
		if msg := statusMatchesNIC(s, p, nicID(0), 3); msg != "" {
			return msg
		}
		if msg := settledAt(p, ip1, nicpoolv1.AttachmentRefused); msg != "" {
			return msg
		}
		return settledAt(p, ip2, nicpoolv1.AttachmentRefused)
	})
	p := getPool(t, node)
	if st := attachState(p, ip1); st.Reason != "PublicIPAddressInUse" {
		t.Errorf("%s refused with %s (%s), want ARM's PublicIPAddressInUse", ip1, st.Reason, st.Message)
	}
	if st := attachState(p, ip2); st.Reason != ReasonASGsPerNIC {
		t.Errorf("%s refused with %s (%s), want %s", ip2, st.Reason, st.Message, ReasonASGsPerNIC)
	}
	if st, reason := condition(p, nicpoolv1.ConditionAttachmentsApplied); st != metav1.ConditionFalse || reason != nicpoolv1.ReasonAttachmentsRefused {
		t.Errorf("AttachmentsApplied = %s/%s, want False/Refused", st, reason)
	}
	if got := configOf(t, s, nicID(0), ip1); got.PublicIP != "" {
		t.Errorf("%s carries public IP %s after the refusal", ip1, got.PublicIP)
	}
	eventually(t, 30*time.Second, func() string {
		for _, e := range podEvents(t, "default", "taken") {
			if strings.HasPrefix(e, "AttachmentRefused") && strings.Contains(e, "PublicIPAddressInUse") {
				return ""
			}
		}
		return fmt.Sprintf("events on pod taken: %v", podEvents(t, "default", "taken"))
	})

	// Retried, with backoff: over ~8 retry intervals (500 ms each in these
	// tests), at most a handful of refused writes.
	refusedBefore := s.srv.Stats().Calls[armsim.OpPutNIC][400]
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond) // sampling the write count over a window, not synchronising
	}
	retries := s.srv.Stats().Calls[armsim.OpPutNIC][400] - refusedBefore
	if retries < 1 || retries > 5 {
		t.Errorf("%d refused writes in 4 s with a 500 ms retry interval, want between 1 and 5 (retried with backoff)", retries)
	}

	// The pod's request changes to a free public IP: applied.
	setAttachments(t, node, -1, nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip1), Pod: podAt("default", "taken"), PublicIPAddress: nicpoolv1.PublicIPRequest(idPIPFree)})
	eventually(t, 60*time.Second, func() string {
		p := lookPool(node)
		if msg := settledAt(p, ip1, nicpoolv1.AttachmentApplied); msg != "" {
			return msg
		}
		return settledAt(p, ip2, "")
	})
}

// TestOperatorKilledBetweenNICAndStatusWrite loses the status write of the
// pass that attached, then of the pass that detached (the operator "dies"
// after each NIC write): status never reports an IP clean that the NIC still
// decorates, and a new operator converges without writing the NIC again.
func TestOperatorKilledBetweenNICAndStatusWrite(t *testing.T) {
	s := startSim(t, attachTopology("10.32.0.0/16", "10.32.0.0/24"))
	const node = "crash-0"
	crashOnAttach := func(r *PoolReconciler) {
		r.afterNICWrite = func(string) error { return errCrash }
	}
	first := startOperator(t, s, testOptions(), nil)
	createNode(t, node, providerID(0))
	setRequestWhenExists(t, node, 1)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool(node), nicID(0), 1) })
	first.stop()
	ip := string(getPool(t, node).Status.IPs[0].IP)

	for _, step := range []struct {
		name  string
		entry nicpoolv1.IPAttachment
		want  attachment
		state string
	}{
		{"attach", nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip), Pod: podAt("default", "crash"), PublicIPAddress: nicpoolv1.PublicIPRequest(idPIPFree)},
			attachment{ASGs: []string{idWeb}, PublicIP: idPIPFree}, nicpoolv1.AttachmentApplied},
		{"detach", nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip)}, attachment{ASGs: []string{idWeb}}, ""},
	} {
		before := getPool(t, node).Status
		op := startOperator(t, s, testOptions(), crashOnAttach)
		setAttachments(t, node, -1, step.entry)
		eventually(t, 60*time.Second, func() string {
			if got := configOf(t, s, nicID(0), ip); !got.Same(step.want) {
				return fmt.Sprintf("%s: the NIC carries %+v", step.name, got)
			}
			return ""
		})
		op.stop()
		after := getPool(t, node)
		if after.Status.AttachmentsObservedGeneration >= after.Generation || !equality.Semantic.DeepEqual(before.Attachments, after.Status.Attachments) {
			t.Fatalf("%s: the lost status write still moved status.attachments to %+v at generation %d of %d",
				step.name, after.Status.Attachments, after.Status.AttachmentsObservedGeneration, after.Generation)
		}
		puts := s.srv.Stats().PutsByNIC[nicID(0)]
		restarted := startOperator(t, s, testOptions(), nil)
		eventually(t, 60*time.Second, func() string { return settledAt(lookPool(node), ip, step.state) })
		if n := s.srv.Stats().PutsByNIC[nicID(0)] - puts; n != 0 {
			t.Errorf("%s: the restarted operator wrote the NIC %d times; it already carried the request", step.name, n)
		}
		restarted.stop()
	}
}

// TestPodDeletedWhileAttachWriteInFlight empties an IP's request (its pod
// was deleted) while the NIC write attaching it is still running: the IP is
// never reported clean while the NIC carries the attachment, and once the
// write ends the next pass detaches it.
func TestPodDeletedWhileAttachWriteInFlight(t *testing.T) {
	s := startSim(t, attachTopology("10.33.0.0/16", "10.33.0.0/24"))
	startOperator(t, s, testOptions(), nil)
	const node = "inflight-0"
	createNode(t, node, providerID(0))
	setRequestWhenExists(t, node, 1)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool(node), nicID(0), 1) })
	ip := string(getPool(t, node).Status.IPs[0].IP)

	s.srv.HangLRO(true)
	setAttachments(t, node, -1, nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip), Pod: podAt("default", "gone"),
		LoadBalancerBackendAddressPools: []nicpoolv1.BackendPoolID{nicpoolv1.BackendPoolID(idPool)}})
	eventually(t, 30*time.Second, func() string { return nicState(s, nicID(0), 1, "Updating") })
	setAttachments(t, node, -1, nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip)})
	// While the write runs, the operator only polls; the empty request is
	// not reported done, whatever the NIC lists.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if p := lookPool(node); settledAt(p, ip, "") == "" {
			t.Fatalf("the detach was reported done while the attaching write was still running")
		}
		time.Sleep(100 * time.Millisecond) // sampling the status during the hang, not synchronising
	}
	s.srv.HangLRO(false)
	eventually(t, 60*time.Second, func() string {
		p := lookPool(node)
		if msg := settledAt(p, ip, ""); msg != "" {
			return fmt.Sprintf("%s (spec %+v, status %+v, NIC %+v)", msg, p.Spec.Attachments, p.Status.Attachments, configOf(t, s, nicID(0), ip))
		}
		return ""
	})
	if got := configOf(t, s, nicID(0), ip); !got.Same(attachment{ASGs: []string{idWeb}}) {
		t.Errorf("after the detach %s carries %+v", ip, got)
	}
}
