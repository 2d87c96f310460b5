package controllers

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
)

// TestOneNICOnePool names the NIC of a served node in a second pool: the
// second is refused with a condition and never publishes the first's IPs,
// deleting it leaves the first's IPs on the NIC, and a pool that waited for
// the NIC gets it once the first pool is gone.
func TestOneNICOnePool(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.11.0.0/16", "10.11.0.0/24", 1))
	startOperator(t, s, testOptions(), nil)
	createNode(t, "onenic-a", providerID(0))
	setRequestWhenExists(t, "onenic-a", 10)
	eventually(t, 30*time.Second, func() string { return statusMatchesNIC(s, lookPool("onenic-a"), nicID(0), 10) })
	before, _ := nicOwned(s, nicID(0))

	createPoolOn(t, "onenic-b", nicID(0), 5)
	waitRefused(t, "onenic-b", "onenic-a")
	// It stays refused: the first pool's IPs are never published to it.
	for range 10 {
		if p := lookPool("onenic-b"); len(p.Status.IPs) != 0 || p.Status.NICID != "" {
			t.Fatalf("refused pool lists %d IPs on NIC %q", len(p.Status.IPs), p.Status.NICID)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := env.Client.Delete(context.Background(), &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: "onenic-b"}}); err != nil {
		t.Fatalf("delete refused pool: %v", err)
	}
	eventually(t, 30*time.Second, func() string {
		err := env.Client.Get(context.Background(), clientKey("onenic-b"), &nicpoolv1.NodeIPPool{})
		if !apierrors.IsNotFound(err) {
			return fmt.Sprintf("refused pool not gone yet (%v)", err)
		}
		return ""
	})
	if after, _ := nicOwned(s, nicID(0)); !maps.Equal(before, after) {
		t.Fatalf("deleting the refused pool changed the first pool's NIC: %v, want %v", after, before)
	}
	if msg := statusMatchesNIC(s, lookPool("onenic-a"), nicID(0), 10); msg != "" {
		t.Fatal(msg)
	}

	// A pool waiting for the NIC gets it once the pool serving it is gone.
	createPoolOn(t, "onenic-c", nicID(0), 4)
	waitRefused(t, "onenic-c", "onenic-a")
	deleteNodeAndPool(t, "onenic-a", false)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool("onenic-c"), nicID(0), 4) })
}

// TestRestartSettlesTwoClaims restarts the operator over two pools whose
// status names the same NIC, as a version without NIC claims left them: the
// older pool keeps the NIC, the newer one is refused and cleared, and the
// shared IPs count once against the VNet quota.
func TestRestartSettlesTwoClaims(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.12.0.0/16", "10.12.0.0/24", 1))
	op := startOperator(t, s, testOptions(), nil)
	createNode(t, "claims-a", providerID(0))
	setRequestWhenExists(t, "claims-a", 8)
	eventually(t, 30*time.Second, func() string { return statusMatchesNIC(s, lookPool("claims-a"), nicID(0), 8) })
	op.stop()

	// The second pool as the old operator left it: the first pool's NIC and
	// IPs in its status.
	createPoolOn(t, "claims-b", nicID(0), 8)
	copyStatus := getPool(t, "claims-a").Status.DeepCopy()
	b := getPool(t, "claims-b")
	b.Status = *copyStatus
	b.Status.Conditions = nil
	if err := env.Client.Status().Update(context.Background(), b); err != nil {
		t.Fatalf("write the second pool's status: %v", err)
	}

	op = startOperator(t, s, testOptions(), nil)
	waitRefused(t, "claims-b", "claims-a")
	if msg := statusMatchesNIC(s, lookPool("claims-a"), nicID(0), 8); msg != "" {
		t.Fatal(msg)
	}
	if used, held := op.ledger.Used(copyStatus.VNetID); used != 8 || held != 8 {
		t.Errorf("VNet quota used %d, held %d, want 8 and 8: the shared IPs count once", used, held)
	}
}

// createPoolOn creates a pool (with no Node) on nicID asking for n IPs, and
// deletes it when the test ends.
func createPoolOn(t *testing.T, name, nicID string, n int32) {
	t.Helper()
	pool := &nicpoolv1.NodeIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       nicpoolv1.NodeIPPoolSpec{NICID: nicID, RequestedIPCount: n},
	}
	if err := env.Client.Create(context.Background(), pool); err != nil {
		t.Fatalf("create pool %s: %v", name, err)
	}
	t.Cleanup(func() { deleteNodeAndPool(t, name, true) })
}

// waitRefused waits until pool says Ready=False, NICInUse, naming owner,
// with no IPs and no NIC in its status.
func waitRefused(t *testing.T, pool, owner string) {
	t.Helper()
	eventually(t, 30*time.Second, func() string {
		p := lookPool(pool)
		c := findCondition(p, nicpoolv1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != nicpoolv1.ReasonNICInUse {
			return fmt.Sprintf("pool %s Ready = %+v, want False/%s", pool, c, nicpoolv1.ReasonNICInUse)
		}
		if !strings.Contains(c.Message, owner) {
			return fmt.Sprintf("Ready message %q does not name pool %s", c.Message, owner)
		}
		if len(p.Status.IPs) != 0 || p.Status.NICID != "" || p.Status.VNetID != "" {
			return fmt.Sprintf("refused pool %s lists %d IPs on NIC %q", pool, len(p.Status.IPs), p.Status.NICID)
		}
		return ""
	})
}

func findCondition(p *nicpoolv1.NodeIPPool, typ string) *metav1.Condition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == typ {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// poolIPs returns the IPs in a pool's status.
func poolIPs(p *nicpoolv1.NodeIPPool) []nicpoolv1.IPv4Address {
	var out []nicpoolv1.IPv4Address
	for _, ip := range p.Status.IPs {
		out = append(out, ip.IP)
	}
	return out
}

// deletePool deletes a pool, failing the test on an error other than NotFound.
func deletePool(t *testing.T, name string) {
	t.Helper()
	err := env.Client.Delete(context.Background(), &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if client.IgnoreNotFound(err) != nil {
		t.Fatalf("delete pool %s: %v", name, err)
	}
}
