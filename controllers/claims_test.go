package controllers

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

func TestNICClaims(t *testing.T) {
	c := newNICClaims()
	var woken []string
	c.wake = func(p []string) { woken = append(woken, p...) }
	if owner, ok := c.claim("/sub/NIC-A", "a"); !ok || owner != "a" {
		t.Fatalf("first claim = %s, %v; want a, true", owner, ok)
	}
	if owner, ok := c.claim("/sub/nic-a", "b"); ok || owner != "a" {
		t.Fatalf("second claim on the same NIC in other case = %s, %v; want a, false", owner, ok)
	}
	if !c.owns("a", "/SUB/NIC-A") || c.owns("b", "/sub/nic-a") {
		t.Fatal("owns disagrees with the claims")
	}
	if _, ok := c.claim("/sub/nic-a", "a"); !ok {
		t.Fatal("a claim by the owner is refused")
	}
	// Moving a to another NIC frees the first for b.
	if _, ok := c.claim("/sub/nic-x", "a"); !ok {
		t.Fatal("moving a to a free NIC is refused")
	}
	if fmt.Sprint(woken) != "[b]" {
		t.Fatalf("woken %v after a left the NIC b waits for, want [b]", woken)
	}
	if _, ok := c.claim("/sub/nic-a", "b"); !ok {
		t.Fatal("b is refused a free NIC")
	}
	woken = nil
	c.release("b")
	if c.owns("b", "/sub/nic-a") || len(woken) != 0 {
		t.Fatalf("after release: owns %v, woken %v", c.owns("b", "/sub/nic-a"), woken)
	}
}

func TestNICClaimsLoadOldestFirst(t *testing.T) {
	at := func(sec int) metav1.Time { return metav1.NewTime(time.Unix(int64(sec), 0)) }
	pool := func(name string, sec int, nic string) nicpoolv1.NodeIPPool {
		return nicpoolv1.NodeIPPool{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: at(sec)},
			Status:     nicpoolv1.NodeIPPoolStatus{NICID: nic},
		}
	}
	c := newNICClaims()
	losers := c.load([]nicpoolv1.NodeIPPool{pool("young", 20, "/n/1"), pool("old", 10, "/N/1"), pool("other", 5, "/n/2"), pool("none", 1, "")})
	if fmt.Sprint(losers) != "map[young:true]" {
		t.Errorf("losers = %v, want young", losers)
	}
	if !c.owns("old", "/n/1") || !c.owns("other", "/n/2") {
		t.Error("the oldest pool of each NIC does not own it")
	}
}
