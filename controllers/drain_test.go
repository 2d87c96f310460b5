package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
)

// TestDeletePoolUnderLiveNode deletes pools whose Nodes still exist: the IPs
// not released by the agent stay on the NIC (pods may hold them), released
// ones go, nothing is added, and the pool goes once its Node is deleted (node
// 0) or once the agent has released every IP (node 1).
func TestDeletePoolUnderLiveNode(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.13.0.0/16", "10.13.0.0/24", 2))
	startOperator(t, s, testOptions(), nil)
	names := []string{"drain-0", "drain-1"}
	for i, n := range names {
		createNode(t, n, providerID(i))
		setRequestWhenExists(t, n, 10)
	}
	for i, n := range names {
		eventually(t, 30*time.Second, func() string { return statusMatchesNIC(s, lookPool(n), nicID(i), 10) })
	}
	for _, n := range names {
		deletePool(t, n)
	}
	for i, n := range names {
		waitDeletionPending(t, s, n, nicID(i), 10)
	}
	// A deleted pool is given nothing more, whatever the agent asks.
	setRequest(t, "drain-0", 20, nil)
	released := poolIPs(getPool(t, "drain-0"))[:3]
	setRequest(t, "drain-0", 20, released)
	waitDeletionPending(t, s, "drain-0", nicID(0), 7)

	// Node 0 goes: the pool releases everything and goes with it.
	uid := getPool(t, "drain-0").UID
	if err := env.Client.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "drain-0"}}); err != nil {
		t.Fatalf("delete node drain-0: %v", err)
	}
	waitPoolGone(t, "drain-0", uid)
	if owned, _ := nicOwned(s, nicID(0)); len(owned) != 0 {
		t.Errorf("NIC 0 keeps %d nicpool configurations after its Node and pool are gone", len(owned))
	}

	// Node 1 stays; its agent releases every IP: the pool goes.
	uid = getPool(t, "drain-1").UID
	setRequest(t, "drain-1", 0, poolIPs(getPool(t, "drain-1")))
	waitPoolGone(t, "drain-1", uid)
	if owned, _ := nicOwned(s, nicID(1)); len(owned) != 0 {
		t.Errorf("NIC 1 keeps %d nicpool configurations after its agent released them all", len(owned))
	}
}

// TestNICIDChange moves a pool to another NIC: refused by the API server
// while the pool holds IPs, done (without leaving configurations on the old
// NIC) once the agent has released them. An operator facing a CRD without
// that rule keeps a pool with IPs on its NIC and says why.
func TestNICIDChange(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.14.0.0/16", "10.14.0.0/24", 2))
	op := startOperator(t, s, testOptions(), nil)
	createNode(t, "move-0", providerID(0))
	setRequestWhenExists(t, "move-0", 10)
	eventually(t, 30*time.Second, func() string { return statusMatchesNIC(s, lookPool("move-0"), nicID(0), 10) })

	err := setNICID(t, "move-0", nicID(1))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.nicID") {
		t.Fatalf("moving a pool with IPs: got %v, want Invalid on spec.nicID", err)
	}
	if err := setNICID(t, "move-0", nicID(0)); err != nil {
		t.Fatalf("naming the NIC the pool is on: %v", err)
	}

	// The agent releases everything, then the move is allowed and done.
	setRequest(t, "move-0", 0, poolIPs(getPool(t, "move-0")))
	eventually(t, 30*time.Second, func() string { return statusMatchesNIC(s, lookPool("move-0"), nicID(0), 0) })
	p := getPool(t, "move-0")
	p.Spec.NICID, p.Spec.RequestedIPCount, p.Spec.IPsNotInUse = nicID(1), 5, nil
	if err := env.Client.Update(context.Background(), p); err != nil {
		t.Fatalf("moving a pool without IPs: %v", err)
	}
	eventually(t, 30*time.Second, func() string {
		p := lookPool("move-0")
		if !strings.EqualFold(p.Status.NICID, nicID(1)) {
			return "status.nicID is " + p.Status.NICID
		}
		return statusMatchesNIC(s, p, nicID(1), 5)
	})
	if owned, _ := nicOwned(s, nicID(0)); len(owned) != 0 {
		t.Errorf("old NIC keeps %d nicpool configurations", len(owned))
	}

	// A CRD without the rule: status.ips emptied, spec moved, status back,
	// with the operator stopped. The pool must stay where its IPs are.
	op.stop()
	p = getPool(t, "move-0")
	saved := p.Status.DeepCopy()
	p.Status.IPs, p.Status.AllocatedIPCount = nil, 0
	if err := env.Client.Status().Update(context.Background(), p); err != nil {
		t.Fatalf("empty status.ips: %v", err)
	}
	if err := setNICID(t, "move-0", nicID(0)); err != nil {
		t.Fatalf("move with empty status: %v", err)
	}
	p = getPool(t, "move-0")
	p.Status = *saved
	if err := env.Client.Status().Update(context.Background(), p); err != nil {
		t.Fatalf("restore status: %v", err)
	}
	before, _ := nicOwned(s, nicID(1))
	startOperator(t, s, testOptions(), nil)
	eventually(t, 30*time.Second, func() string {
		p := lookPool("move-0")
		if st, reason := condition(p, nicpoolv1.ConditionReady); st != metav1.ConditionFalse || reason != nicpoolv1.ReasonNICChangePending {
			return fmt.Sprintf("Ready = %s/%s, want False/%s", st, reason, nicpoolv1.ReasonNICChangePending)
		}
		return statusMatchesNIC(s, p, nicID(1), 5)
	})
	if after, _ := nicOwned(s, nicID(1)); len(after) != len(before) {
		t.Errorf("NIC 1 went from %d to %d configurations during a blocked move", len(before), len(after))
	}
	if owned, _ := nicOwned(s, nicID(0)); len(owned) != 0 {
		t.Errorf("blocked move wrote %d configurations to the new NIC", len(owned))
	}
}

// setNICID sets a pool's spec.nicID and returns the API server's answer.
func setNICID(t *testing.T, name, id string) error {
	t.Helper()
	p := getPool(t, name)
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.NICID = id
	return env.Client.Patch(context.Background(), p, patch)
}

// waitDeletionPending waits until a deleted pool says DeletionPending and
// lists exactly the want IPs its NIC holds.
func waitDeletionPending(t *testing.T, s *sim, name, nic string, want int) {
	t.Helper()
	eventually(t, 30*time.Second, func() string {
		p := lookPool(name)
		if p.DeletionTimestamp.IsZero() {
			return "pool " + name + " is not being deleted"
		}
		if st, reason := condition(p, nicpoolv1.ConditionReady); st != metav1.ConditionFalse || reason != nicpoolv1.ReasonDeletionPending {
			return fmt.Sprintf("pool %s Ready = %s/%s, want False/%s", name, st, reason, nicpoolv1.ReasonDeletionPending)
		}
		return statusMatchesNIC(s, p, nic, want)
	})
}

// waitPoolGone waits until the pool with uid no longer exists (the node
// controller recreates a pool of the same name for a Node that lives).
func waitPoolGone(t *testing.T, name string, uid types.UID) {
	t.Helper()
	eventually(t, 30*time.Second, func() string {
		p := &nicpoolv1.NodeIPPool{}
		err := env.Client.Get(context.Background(), clientKey(name), p)
		if !apierrors.IsNotFound(err) && (err != nil || p.UID == uid) {
			return fmt.Sprintf("pool %s still exists (%v)", name, err)
		}
		return ""
	})
}
