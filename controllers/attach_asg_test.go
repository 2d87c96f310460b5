package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/attach"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/nicsync"
)

// moveNICToASGs writes the NIC as an administrator would to put it in asgs:
// primaryOnly changes the primary configuration alone (Azure refuses that),
// otherwise every configuration, nicpool's included, in one write. It
// retries on 412 (the operator wrote in between).
func moveNICToASGs(t *testing.T, s *sim, id string, asgs []string, primaryOnly bool) error {
	t.Helper()
	for attempt := 0; ; attempt++ {
		nic, err := s.nics.GetNIC(context.Background(), id)
		if err != nil {
			t.Fatalf("read nic: %v", err)
		}
		for _, c := range nic.Properties.IPConfigurations {
			if primaryOnly && (c.Properties.Primary == nil || !*c.Properties.Primary) {
				continue
			}
			c.Properties.ApplicationSecurityGroups = nil
			for _, a := range asgs {
				c.Properties.ApplicationSecurityGroups = append(c.Properties.ApplicationSecurityGroups, &armnetwork.ApplicationSecurityGroup{ID: to.Ptr(a)})
			}
		}
		_, err = s.nics.UpdateNIC(context.Background(), nic)
		if err == nil || azure.Classify(err) != azure.KindPreconditionFailed || attempt >= 10 {
			return err
		}
	}
}

// TestNICASGsChangedAfterIPs moves a NIC that already holds pod IPs from ASG
// web to ASG api, as an administrator does: Azure refuses a change of the
// primary configuration alone, so the administrator's write moves every
// configuration, nicpool's included. The operator then reports the pods'
// ASG requests against the new groups without any change of the pool (it
// passes again once its remembered NIC is too old): the pod asking for web
// turns Refused, the one asking for api and a backend pool Applied at once
// (its earlier refusal waits for no retry), and configurations it adds afterwards carry
// api.
func TestNICASGsChangedAfterIPs(t *testing.T) {
	topo := attachTopology("10.35.0.0/16", "10.35.0.0/24")
	topo.ApplicationSecurityGroups = append(topo.ApplicationSecurityGroups, armsim.ResourceSpec{ResourceGroup: testRG, Name: "api"})
	s := startSim(t, topo)
	idAPI := netID("applicationSecurityGroups", "api")
	opts := testOptions()
	// Refusals would be retried only after two minutes: the test sees an
	// outcome only if nicpool re-checks the ASGs rather than waiting.
	opts.LimitRetry = 2 * time.Minute
	startOperator(t, s, opts, func(r *PoolReconciler) { r.knownTTL = time.Second })
	const node = "asgmove-0"
	createNode(t, node, providerID(0))
	setRequestWhenExists(t, node, 2)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool(node), nicID(0), 2) })
	pool := getPool(t, node)
	ip1, ip2 := string(pool.Status.IPs[0].IP), string(pool.Status.IPs[1].IP)
	asg := func(id string) []nicpoolv1.ApplicationSecurityGroupID {
		return []nicpoolv1.ApplicationSecurityGroupID{nicpoolv1.ApplicationSecurityGroupID(id)}
	}
	setAttachments(t, node, -1,
		nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip1), Pod: podAt("default", "wants-web"), ApplicationSecurityGroups: asg(idWeb)},
		nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip2), Pod: podAt("default", "wants-api"), ApplicationSecurityGroups: asg(idAPI),
			LoadBalancerBackendAddressPools: []nicpoolv1.BackendPoolID{nicpoolv1.BackendPoolID(idPool)}})
	eventually(t, 60*time.Second, func() string {
		p := lookPool(node)
		if msg := settledAt(p, ip1, nicpoolv1.AttachmentApplied); msg != "" {
			return msg
		}
		return settledAt(p, ip2, nicpoolv1.AttachmentRefused)
	})

	err := moveNICToASGs(t, s, nicID(0), []string{idAPI}, true)
	if err == nil || !strings.Contains(err.Error(), armsim.CodeASGsDifferOnNIC) {
		t.Fatalf("moving the primary configuration alone to ASG api: %v, want Azure's %s", err, armsim.CodeASGsDifferOnNIC)
	}
	if err := moveNICToASGs(t, s, nicID(0), []string{idAPI}, false); err != nil {
		t.Fatalf("move every configuration to ASG api: %v", err)
	}
	// No change of the pool follows: the operator's own re-check must see it.
	eventually(t, 30*time.Second, func() string {
		p := lookPool(node)
		if st := attachState(p, ip1); st == nil || st.State != nicpoolv1.AttachmentRefused || st.Reason != ReasonASGsPerNIC {
			return fmt.Sprintf("%s (asks for web) reported %+v, want Refused %s", ip1, st, ReasonASGsPerNIC)
		}
		return settledAt(p, ip2, nicpoolv1.AttachmentApplied)
	})
	if got := configOf(t, s, nicID(0), ip2); !got.Same(attachment{ASGs: []string{idAPI}, Pools: []string{idPool}}) {
		t.Errorf("%s carries %+v, want ASG api and the backend pool", ip2, got)
	}
	eventually(t, 30*time.Second, func() string {
		for _, e := range podEvents(t, "default", "wants-web") {
			if strings.HasPrefix(e, "AttachmentRefused") && strings.Contains(e, ReasonASGsPerNIC) {
				return ""
			}
		}
		return fmt.Sprintf("events on pod wants-web: %v", podEvents(t, "default", "wants-web"))
	})

	// A configuration added now carries the NIC's new ASG.
	setRequestWhenExists(t, node, 3)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool(node), nicID(0), 3) })
	nic, err := s.nics.GetNIC(context.Background(), nicID(0))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range nicsync.Configs(nic) {
		if !attach.SameIDs(c.Att.ASGs, []string{idAPI}) {
			t.Errorf("configuration %s (%s) is in ASGs %v, want the NIC's [%s]", c.Name, c.IP, c.Att.ASGs, idAPI)
		}
	}
}

// TestASGRequestReadsMovedNIC asks for ASG api right after an administrator
// moved the NIC from web to api, while the operator still remembers the NIC
// in web from its last pass: the request is checked against the NIC as ARM
// holds it (read afresh), not as remembered, and applied at once.
func TestASGRequestReadsMovedNIC(t *testing.T) {
	topo := attachTopology("10.36.0.0/16", "10.36.0.0/24")
	topo.ApplicationSecurityGroups = append(topo.ApplicationSecurityGroups, armsim.ResourceSpec{ResourceGroup: testRG, Name: "api"})
	s := startSim(t, topo)
	idAPI := netID("applicationSecurityGroups", "api")
	opts := testOptions()
	opts.LimitRetry = 2 * time.Minute // a refusal would stand for the whole test
	startOperator(t, s, opts, nil)    // the default memory of a NIC: two minutes
	const node = "asgread-0"
	createNode(t, node, providerID(0))
	setRequestWhenExists(t, node, 1)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool(node), nicID(0), 1) })
	ip := string(getPool(t, node).Status.IPs[0].IP)

	if err := moveNICToASGs(t, s, nicID(0), []string{idAPI}, false); err != nil {
		t.Fatalf("move every configuration to ASG api: %v", err)
	}
	setAttachments(t, node, -1, nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip), Pod: podAt("default", "api-pod"),
		ApplicationSecurityGroups: []nicpoolv1.ApplicationSecurityGroupID{nicpoolv1.ApplicationSecurityGroupID(idAPI)}})
	eventually(t, 30*time.Second, func() string { return settledAt(lookPool(node), ip, nicpoolv1.AttachmentApplied) })
}
