package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// killAfterCreate is the operator's public IP client with a crash right
// after a create: the public IP exists in ARM, then the operator is
// cancelled (kill) before the pass goes on to its NIC write. The create
// returns only once the operator's context is done, so nothing of the pass
// reaches ARM or the API server after it.
type killAfterCreate struct {
	PublicIPAPI
	once    *sync.Once
	kill    func()
	created chan<- string
}

func (k killAfterCreate) CreatePublicIP(ctx context.Context, id, location string) error {
	if err := k.PublicIPAPI.CreatePublicIP(ctx, id, location); err != nil {
		return err
	}
	k.once.Do(func() {
		k.created <- id
		k.kill()
	})
	<-ctx.Done()
	return ctx.Err()
}

// createdPublicIPs lists the public IPs armsim holds that the operator
// created (named nicpool-pip-...).
func createdPublicIPs(s *sim) []string {
	var out []string
	for _, p := range s.srv.Snapshot().Network.PublicIPs {
		if isCreatedPublicIP(p.ID) {
			out = append(out, p.ID)
		}
	}
	return out
}

// TestOperatorKilledBetweenPublicIPCreateAndNICWrite kills the operator
// after it created a "create" public IP (its name already recorded in
// status) and before the NIC write that attaches it. The restarted operator
// finds the public IP by its recorded name: it attaches that one (no second
// one is created, none is orphaned), and deletes it once the pod is gone.
func TestOperatorKilledBetweenPublicIPCreateAndNICWrite(t *testing.T) {
	s := startSim(t, attachTopology("10.34.0.0/16", "10.34.0.0/24"))
	const node = "pipcrash-0"
	first := startOperator(t, s, testOptions(), nil)
	createNode(t, node, providerID(0))
	setRequestWhenExists(t, node, 1)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool(node), nicID(0), 1) })
	first.stop()
	ip := string(getPool(t, node).Status.IPs[0].IP)

	created := make(chan string, 1)
	var running atomic.Pointer[operator] // set before the first pass can create
	op := startOperator(t, s, testOptions(), func(r *PoolReconciler) {
		r.PublicIPs = killAfterCreate{PublicIPAPI: r.PublicIPs, once: &sync.Once{}, kill: func() { running.Load().cancel() }, created: created}
	})
	running.Store(op)
	puts := s.srv.Stats().PutsByNIC[nicID(0)]
	setAttachments(t, node, -1, nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip), Pod: podAt("default", "pip-crash"), PublicIPAddress: nicpoolv1.PublicIPCreate})
	var id string
	select {
	case id = <-created:
	case <-time.After(60 * time.Second): // one pass on an idle envtest takes well under a second
		t.Fatal("the operator created no public IP")
	}
	op.stop()

	// The kill window: the public IP exists, its name is in status, the NIC
	// was not written.
	if want := createdPublicIPID(nicID(0), node, ip, "uid-pip-crash"); !strings.EqualFold(id, want) {
		t.Fatalf("created %s, want %s", id, want)
	}
	if n := s.srv.Stats().PutsByNIC[nicID(0)] - puts; n != 0 {
		t.Fatalf("the NIC was written %d times after the create; the kill came too late", n)
	}
	if got := configOf(t, s, nicID(0), ip); got.PublicIP != "" {
		t.Fatalf("the NIC carries public IP %s before any NIC write", got.PublicIP)
	}
	if st := attachState(getPool(t, node), ip); st == nil || !strings.EqualFold(st.CreatedPublicIPAddress, id) {
		t.Fatalf("status before the crash does not record the public IP to create: %+v", st)
	}

	restarted := startOperator(t, s, testOptions(), nil)
	eventually(t, 60*time.Second, func() string {
		p := lookPool(node)
		if msg := settledAt(p, ip, nicpoolv1.AttachmentApplied); msg != "" {
			return msg
		}
		if st := attachState(p, ip); !strings.EqualFold(st.PublicIPAddress, id) || !strings.EqualFold(st.CreatedPublicIPAddress, id) {
			return fmt.Sprintf("status carries public IP %s, created %s; want %s", st.PublicIPAddress, st.CreatedPublicIPAddress, id)
		}
		return ""
	})
	if got := configOf(t, s, nicID(0), ip); !strings.EqualFold(got.PublicIP, id) {
		t.Errorf("the pod's IP configuration carries public IP %q, want %s", got.PublicIP, id)
	}
	if got := createdPublicIPs(s); len(got) != 1 || !strings.EqualFold(got[0], id) {
		t.Errorf("public IPs the operator created: %v, want only %s", got, id)
	}

	// The pod is deleted: the agent's entry asks for nothing.
	setAttachments(t, node, -1, nicpoolv1.IPAttachment{IP: nicpoolv1.IPv4Address(ip)})
	eventually(t, 60*time.Second, func() string {
		if msg := settledAt(lookPool(node), ip, ""); msg != "" {
			return msg
		}
		if got := createdPublicIPs(s); len(got) != 0 {
			return fmt.Sprintf("created public IPs left: %v", got)
		}
		return ""
	})
	if got := configOf(t, s, nicID(0), ip); got.PublicIP != "" {
		t.Errorf("after the pod went the configuration still carries public IP %s", got.PublicIP)
	}
	restarted.stop()
}
