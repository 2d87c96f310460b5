package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// serviceEndpointRows shows a VNet service endpoint (docs/service-endpoints.md): a
// storage account whose firewall allows the nodes' subnet refuses pod a while the
// subnet has no Microsoft.Storage endpoint (its traffic leaves through default outbound
// SNAT); once the network administrator enables the endpoint and the operator
// publishes it, pods a and b reach the account with their own pod IPs.
func (d *demo) serviceEndpointRows(ctx context.Context, a, b *testbed.Pod) error {
	tb := d.c.TB
	step("VNet service endpoint: storage account at %s, firewall allowing subnet nodes only (virtual network rule); the subnet has no Microsoft.Storage endpoint yet.", testbed.StorageIP)
	before := []testbed.StorageCheck{
		{Name: "pod to storage, no endpoint (403)", From: a.NS, FromName: a.Name, WantStatus: 403, WantSeen: testbed.DefaultOutboundIP},
	}
	d.storageRows(ctx, before)

	step("The network administrator enables Microsoft.Storage on subnet nodes (subnet PUT through the Azure SDK); the operator publishes it in each pool's status (within about a minute; annotating the pools hurries it).")
	if err := tb.SetServiceEndpoint(ctx, "nodes", armsim.ServiceStorage, true); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "annotate", "nodeippools", "--all", "--overwrite", "demo.nicpool.io/refresh="+time.Now().UTC().Format("150405")); err != nil {
		return err
	}
	for _, n := range d.c.Nodes {
		// The pass takes under a second; the operator's subnet read is cached for 30 s.
		if err := tb.WaitPoolServiceEndpoint(ctx, n.VM, armsim.ServiceStorage, true, 90*time.Second); err != nil {
			d.problem("%v", err)
		}
	}
	if err := d.kubectl(ctx, "get", "nodeippools", "-o", "custom-columns=NODE:.metadata.name,SUBNET CIDR:.status.subnetCIDR,SERVICE ENDPOINTS:.status.subnetServiceEndpoints[*].service"); err != nil {
		return err
	}
	after := []testbed.StorageCheck{
		{Name: "pod to storage, service endpoint (pod IP)", From: a.NS, FromName: a.Name, WantStatus: 200, WantSeen: a.IP},
		{Name: "pod to storage, service endpoint (pod IP)", From: b.NS, FromName: b.Name, WantStatus: 200, WantSeen: b.IP},
	}
	d.storageRows(ctx, after)
	return nil
}

func (d *demo) storageRows(ctx context.Context, checks []testbed.StorageCheck) {
	results := testbed.RunStorageChecks(ctx, checks, 30*time.Second)
	fmt.Print(testbed.FormatStorageChecks(results))
	for _, r := range results {
		if !r.OK() {
			d.problem("storage %s from %s: got %d seen as %q (%v), want %d seen as %s", r.Name, r.FromName, r.Reply.Status, r.Reply.Seen, r.Err, r.WantStatus, r.WantSeen)
		}
	}
}
