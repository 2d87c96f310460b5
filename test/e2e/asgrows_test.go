package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nicpool/nicpool/internal/attach"
	"github.com/nicpool/nicpool/internal/nicsync"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// nicASGs maps each nicpool IP configuration of vm's NIC (by name) to its ASGs,
// and returns the primary configuration's ASGs.
func nicASGs(t *testing.T, r *podRows, vm *testbed.VM) (map[string][]string, []string) {
	t.Helper()
	nic, err := r.arm.NewInterfacesClient().Get(r.ctx, testbed.ResourceGroup, vm.Name+"-nic", nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var primary []string
	for _, c := range nicsync.Configs(&nic.Interface) {
		switch {
		case c.Primary:
			primary = c.Att.ASGs
		case c.Owned():
			out[c.Name+" "+c.IP] = c.Att.ASGs
		}
	}
	return out, primary
}

// waitPodEvent waits until an Event with reason (and note containing note) is
// recorded on pod p. The operator records it in the pass that answers the
// request; azureWait covers a loaded machine.
func waitPodEvent(t *testing.T, r *podRows, p *testbed.Pod, reason, note string) {
	t.Helper()
	deadline := time.Now().Add(azureWait)
	for {
		var list eventsv1.EventList
		if err := r.tb.Client().List(r.ctx, &list, client.InNamespace(p.Key().Namespace)); err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Kind != "Pod" || e.Regarding.Name != p.Key().Name {
				continue
			}
			if e.Reason == reason && strings.Contains(e.Note, note) {
				return
			}
			seen = append(seen, e.Reason+": "+e.Note)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event (%q) on pod %s; events: %v", reason, note, p.Name, seen)
		}
		time.Sleep(200 * time.Millisecond) // polling the API server for the operator's event
	}
}

// TestPodInASGWithTraffic proves the ASG row with real traffic: pods are in an ASG
// by running on a node whose NIC is in it (docs/pod-attachments.md).
//   - vm-0's NIC is put in ASG "web" (every IP configuration, as Azure requires),
//     a subnet NSG allows on-premises to ASG web on the probe port and denies
//     on-premises otherwise: the pod on vm-0 is reached from on-premises, the pod on
//     vm-1 is denied. Both pods ask for ASG web by annotation: the operator reports
//     the first Applied (Event AttachmentApplied), the second Refused
//     ApplicationSecurityGroupsPerNIC (Event AttachmentRefused).
//   - IP configurations the operator adds afterwards carry the primary's ASG, and
//     the fabric applies it per IP configuration: a pod on such a new configuration
//     is reached from on-premises too.
//   - Moving the primary configuration alone to another ASG is refused by ARM
//     (AllIpConfigurationsOnANicMustBelongToTheSameApplicationSecurityGroups);
//     moving the whole NIC to ASG "api" is accepted and the fabric then denies
//     on-premises every pod of the node.
func TestPodInASGWithTraffic(t *testing.T) {
	// One warm IP, batches of one: each new pod makes the operator add a
	// configuration, so the ones added after the NIC joined web are easy to find.
	tb := newTestbed(t, 2, []string{"--warm-ip-target=1", "--min-ip-target=1", "--batch-size=1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	f, err := tb.ARM()
	if err != nil {
		t.Fatal(err)
	}
	r := &podRows{tb: tb, arm: f, ctx: ctx}
	vm0, vm1 := tb.VMs[0], tb.VMs[1]
	onprem := tb.Sites["onprem"]
	in := startPods(t, tb, vm0, "web", 1, 1)[0]
	out := startPods(t, tb, vm1, "other", 1, 1)[0]
	live := []*testbed.Pod{in, out}
	if err := tb.StartProbeServers(ctx, in, out); err != nil {
		t.Fatal(err)
	}
	r.reach(t, "on-premises to the pod outside any ASG before the NSG", onprem.NS, out.IP, testbed.ProbePort, onprem.HostIP)

	wctx, wcancel := context.WithTimeout(ctx, azureWait)
	s, err := tb.SetUpASGRows(wctx, in, out)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ASG requests: %s", s.Describe())
	if s.OutState.Reason != "ApplicationSecurityGroupsPerNIC" {
		t.Errorf("the pod outside web: %+v, want Refused ApplicationSecurityGroupsPerNIC", s.OutState)
	}
	if !attach.SameIDs(s.InState.ApplicationSecurityGroups, []string{s.ASG}) {
		t.Errorf("the pod in web: status lists ASGs %v, want [%s]", s.InState.ApplicationSecurityGroups, s.ASG)
	}
	waitPodEvent(t, r, in, "AttachmentApplied", "")
	waitPodEvent(t, r, out, "AttachmentRefused", "ApplicationSecurityGroupsPerNIC")
	before, primary := nicASGs(t, r, vm0)
	if !attach.SameIDs(primary, []string{s.ASG}) {
		t.Fatalf("vm-0's primary configuration is in %v, want [%s]", primary, s.ASG)
	}
	results := testbed.RunPaths(ctx, tb.ASGPaths(s), azureWait)
	t.Logf("\n%s", testbed.FormatMatrix(results))
	for _, res := range results {
		if !res.OK() {
			t.Errorf("%s from %s to %s: saw %q, err %v", res.Name, res.FromName, res.ToName, res.Seen, res.Err)
		}
	}
	if err := tb.StartServer(ctx, in.NS, 7778, func(_, remote string) string { return remote }); err != nil {
		t.Fatal(err)
	}
	r.reach(t, "vm-1 to the pod in web on another port (AllowVnetInBound)", vm1.NS, in.IP, 7778, vm1.PrimaryIP)
	r.blocked(t, "on-premises to the pod in web on another port (only the probe port is allowed)", onprem.NS, in.IP, 7778)

	t.Run("new configurations carry the primary's ASGs", func(t *testing.T) {
		var fresh *testbed.Pod
		for i := 0; i < 4 && fresh == nil; i++ {
			p, err := tb.StartPod(ctx, vm0, fmt.Sprintf("web-new-%d", i))
			if err != nil {
				t.Fatal(err)
			}
			live = append(live, p)
			if !slices.ContainsFunc(keys(before), func(k string) bool { return strings.HasSuffix(k, " "+p.IP) }) {
				fresh = p
			}
		}
		if fresh == nil {
			t.Fatalf("4 new pods on vm-0 all got IPs of configurations that existed before: %v", keys(before))
		}
		after, _ := nicASGs(t, r, vm0)
		for name, asgs := range after {
			if !attach.SameIDs(asgs, []string{s.ASG}) {
				t.Errorf("configuration %s is in ASGs %v, want the primary's [%s]", name, asgs, s.ASG)
			}
		}
		if err := tb.StartProbeServer(ctx, fresh.NS); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, azureWait)
		defer wcancel()
		if err := tb.WaitFabric(wctx); err != nil {
			t.Fatal(err)
		}
		r.reach(t, "on-premises to a pod on a configuration the operator added after the NIC joined web", onprem.NS, fresh.IP, testbed.ProbePort, onprem.HostIP)
	})

	t.Run("the NIC moves to another ASG", func(t *testing.T) {
		api, err := tb.CreateASG(ctx, "api")
		if err != nil {
			t.Fatal(err)
		}
		err = tb.SetNICASGs(ctx, vm0, []string{api}, true)
		if err == nil || !strings.Contains(err.Error(), "AllIpConfigurationsOnANicMustBelongToTheSameApplicationSecurityGroups") {
			t.Fatalf("moving vm-0's primary configuration alone to ASG api: %v, want ARM's refusal", err)
		}
		r.reach(t, "on-premises to the pod in web after the refused write", onprem.NS, in.IP, testbed.ProbePort, onprem.HostIP)
		if err := tb.SetNICASGs(ctx, vm0, []string{api}, false); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, azureWait)
		defer wcancel()
		if err := tb.WaitFabric(wctx); err != nil {
			t.Fatal(err)
		}
		r.blocked(t, "on-premises to the pod once its node's NIC is in api, not web", onprem.NS, in.IP, testbed.ProbePort)
		after, _ := nicASGs(t, r, vm0)
		for name, asgs := range after {
			if !attach.SameIDs(asgs, []string{api}) {
				t.Errorf("configuration %s is in ASGs %v after the move, want [%s]", name, asgs, api)
			}
		}
	})
	if err := tb.CheckInvariants(live, 250); err != nil {
		t.Error(err)
	}
}

func keys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
