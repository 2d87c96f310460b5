package controllers

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
)

func TestSubnetRoom(t *testing.T) {
	const subnet = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a"
	t0 := time.Unix(1000, 0)
	ttl := time.Minute
	type step struct {
		do      func(r *subnetRoom)
		at      time.Duration
		wantCap int
	}
	refused := func(n int) func(*subnetRoom) { return func(r *subnetRoom) { r.refused(subnet, n, t0) } }
	wrote := func(add, remove int) func(*subnetRoom) { return func(r *subnetRoom) { r.wrote(subnet, add, remove) } }
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "nothing known", steps: []step{{wantCap: -1}}},
		{name: "refusal bounds the next write", steps: []step{{do: refused(54), wantCap: 53}}},
		{name: "halving down remembers the smallest refusal", steps: []step{{do: refused(54), wantCap: 53}, {do: refused(27), wantCap: 26}, {do: refused(13), wantCap: 12}}},
		{name: "additions use up the room", steps: []step{{do: refused(8), wantCap: 7}, {do: wrote(4, 0), wantCap: 3}, {do: wrote(3, 0), wantCap: 0}}},
		{name: "own removals give room back", steps: []step{{do: refused(2), wantCap: 1}, {do: wrote(1, 0), wantCap: 0}, {do: wrote(0, 10), wantCap: 10}}},
		{name: "a fresh bound is trusted", steps: []step{{do: refused(1), at: ttl - time.Second, wantCap: 0}}},
		{name: "an old bound is probed with one more", steps: []step{{do: refused(1), at: ttl, wantCap: 1}}},
		{name: "a refused probe renews the bound", steps: []step{{do: refused(1), wantCap: 0}, {do: func(r *subnetRoom) { r.refused(subnet, 1, t0.Add(ttl)) }, at: ttl + time.Second, wantCap: 0}}},
		{name: "a probe that fits forgets the bound", steps: []step{{do: refused(1), wantCap: 0}, {do: wrote(1, 0), at: ttl, wantCap: -1}}},
		{name: "subnet IDs are case-insensitive", steps: []step{{do: refused(3), wantCap: 2}, {do: func(r *subnetRoom) { r.wrote(strings.ToUpper(subnet), 2, 0) }, wantCap: 0}}},
		{name: "a refusal of nothing teaches nothing", steps: []step{{do: refused(0), wantCap: -1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r subnetRoom
			for i, s := range tt.steps {
				if s.do != nil {
					s.do(&r)
				}
				if got := r.maxAdds(subnet, t0.Add(s.at), ttl); got != s.wantCap {
					t.Fatalf("step %d: maxAdds = %d, want %d", i, got, s.wantCap)
				}
			}
		})
	}
}

// TestFullSubnetRemembered: a pool held back by a full subnet does not send
// the refused write again on every retry, and still grows at once when
// another pool in the subnet releases addresses.
func TestFullSubnetRemembered(t *testing.T) {
	// A /27 has 27 usable addresses; the two NICs' primaries hold two.
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.13.0.0/16", "10.13.0.0/27", 2))
	startOperator(t, s, testOptions(), nil)
	createNode(t, "fullmem-0", providerID(0))
	createNode(t, "fullmem-1", providerID(1))
	setRequestWhenExists(t, "fullmem-0", 10)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool("fullmem-0"), nicID(0), 10) })
	setRequestWhenExists(t, "fullmem-1", 80)
	waitPoolLimit(t, s, "fullmem-1", nicID(1), 15, nicpoolv1.ReasonSubnetFull)

	// Retries every LimitRetry: count the refused writes over several passes
	// (of this pool: the other one is settled and not requeued).
	before, start, passesBefore := s.srv.Stats(), time.Now(), reconciles(t)
	var refused, passes int
	eventually(t, 60*time.Second, func() string {
		now := s.srv.Stats()
		refused = now.Calls[armsim.OpPutNIC][http.StatusBadRequest] - before.Calls[armsim.OpPutNIC][http.StatusBadRequest]
		passes = reconciles(t) - passesBefore
		if passes < 8 {
			return fmt.Sprintf("%d passes so far, want 8", passes)
		}
		return ""
	})
	// Without memory every pass halves 65 additions down to none: 7 refusals.
	// With it, a probe of one address at most once per subnetRoomIntervals
	// retry intervals (a slow machine makes fewer passes, never more probes).
	elapsed := time.Since(start)
	if most := 1 + int(elapsed/(subnetRoomIntervals*testOptions().LimitRetry)); refused > most {
		t.Errorf("%d writes refused as SubnetFull in %d passes over %s, want at most %d", refused, passes, elapsed.Round(time.Millisecond), most)
	}

	// The other pool releases its 10 addresses: the first takes them without
	// being refused first.
	before = s.srv.Stats()
	setRequest(t, "fullmem-0", 0, getPoolIPs(t, "fullmem-0"))
	waitPoolLimit(t, s, "fullmem-1", nicID(1), 25, nicpoolv1.ReasonSubnetFull)
	if n := s.srv.Stats().Calls[armsim.OpPutNIC][http.StatusBadRequest] - before.Calls[armsim.OpPutNIC][http.StatusBadRequest]; n > 1 {
		t.Errorf("%d writes refused as SubnetFull while taking freed addresses, want at most 1", n)
	}
}

// waitPoolLimit waits until the pool holds want IPs, as its NIC does, and
// says LimitReached for reason.
func waitPoolLimit(t *testing.T, s *sim, name, nic string, want int, reason string) {
	t.Helper()
	eventually(t, 60*time.Second, func() string {
		p := lookPool(name)
		if msg := statusMatchesNIC(s, p, nic, want); msg != "" {
			return msg
		}
		if _, got := condition(p, nicpoolv1.ConditionLimitReached); got != reason {
			return fmt.Sprintf("LimitReached reason %q, want %q", got, reason)
		}
		return ""
	})
}

// getPoolIPs returns the IPs in the pool's status.
func getPoolIPs(t *testing.T, name string) []nicpoolv1.IPv4Address {
	t.Helper()
	var out []nicpoolv1.IPv4Address
	for _, ip := range getPool(t, name).Status.IPs {
		out = append(out, ip.IP)
	}
	return out
}
