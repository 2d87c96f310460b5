package armsim_test

import (
	"context"
	"testing"

	"github.com/nicpool/nicpool/internal/armsim"
)

// BenchmarkNew measures loading a large topology (one NIC per node in a /16).
func BenchmarkNew(b *testing.B) {
	topo := armsim.GenerateTopology(testSub, testRG, "10.0.0.0/16", "10.0.0.0/16", 5000)
	for b.Loop() {
		if _, err := armsim.New(armsim.Options{Topology: topo}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutNIC measures a read-modify-write PUT adding one IP configuration through the
// real armnetwork client and LRO poller, on a VNet already holding 5000 NICs.
func BenchmarkPutNIC(b *testing.B) {
	topo := armsim.GenerateTopology(testSub, testRG, "10.0.0.0/16", "10.0.0.0/16", 5000)
	e := startEnvTB(b, armsim.Options{Topology: topo, Throttle: armsim.ThrottleOptions{Disabled: true}})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		got, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil)
		if err != nil {
			b.Fatal(err)
		}
		nic := got.Interface
		if len(nic.Properties.IPConfigurations) > 200 {
			nic.Properties.IPConfigurations = nic.Properties.IPConfigurations[:1]
		}
		addSecondaries(&nic, "b"+itoa(i%1000), 1)
		i++
		p, err := e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-0-nic", nic, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, fastPoll); err != nil {
			b.Fatal(err)
		}
	}
}
