package azure

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// nicIndexTTL is how long one list of a resource group's NICs answers which NIC a VM has.
const nicIndexTTL = 30 * time.Second

// nicIndex maps VMs to their NICs from one paged list of each resource group's NICs,
// shared by every FindNICForVM call on the group: a cluster's nodes joining at once cost
// one list (a page per 100 NICs in Azure), not one list per node. A VM the index does not
// show is looked up in a list started after the caller asked, so a NIC created a moment
// ago is found; that is also what a VM without a NIC costs, as before.
type nicIndex struct {
	mu     sync.Mutex
	groups map[string]*groupIndex // by lower-case "subscription/resourceGroup"
}

// groupIndex is one resource group's last list, and the list running now, if any.
type groupIndex struct {
	byVM     map[string][]*armnetwork.Interface // lower-case VM ID -> its NICs (ID, name, primary)
	listedAt time.Time                          // when the last complete list started
	running  *groupList
}

// groupList is one list in flight; done is closed when it ends.
type groupList struct {
	started time.Time
	done    chan struct{}
	err     error
}

// listFunc lists every NIC of a resource group.
type listFunc func(ctx context.Context) ([]*armnetwork.Interface, error)

// find returns the NICs attached to vmID, listing the group when the index is older
// than nicIndexTTL or does not show the VM in a list started after the call began.
func (x *nicIndex) find(ctx context.Context, group, vmID string, list listFunc) ([]*armnetwork.Interface, error) {
	asked := time.Now()
	vm := strings.ToLower(vmID)
	for {
		x.mu.Lock()
		g := x.group(group)
		nics, ok := g.byVM[vm]
		if ok && time.Since(g.listedAt) < nicIndexTTL {
			x.mu.Unlock()
			return nics, nil
		}
		if !g.listedAt.IsZero() && !g.listedAt.Before(asked) {
			// A list that started after the call began does not show the VM.
			x.mu.Unlock()
			return nil, nil
		}
		run := g.running
		mine := run == nil
		if mine {
			run = &groupList{started: time.Now(), done: make(chan struct{})}
			g.running = run
		}
		x.mu.Unlock()
		if mine {
			x.run(ctx, group, run, list)
		}
		select {
		case <-run.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if run.err != nil {
			return nil, run.err
		}
	}
}

// run lists the group and replaces its index.
func (x *nicIndex) run(ctx context.Context, group string, run *groupList, list listFunc) {
	nics, err := list(ctx)
	byVM := map[string][]*armnetwork.Interface{}
	for _, nic := range nics {
		if nic == nil || nic.ID == nil || nic.Properties == nil || nic.Properties.VirtualMachine == nil ||
			nic.Properties.VirtualMachine.ID == nil {
			continue
		}
		vm := strings.ToLower(*nic.Properties.VirtualMachine.ID)
		slim := &armnetwork.Interface{ID: nic.ID, Name: nic.Name, Properties: &armnetwork.InterfacePropertiesFormat{Primary: nic.Properties.Primary}}
		byVM[vm] = append(byVM[vm], slim)
	}
	x.mu.Lock()
	g := x.group(group)
	if err == nil {
		g.byVM, g.listedAt = byVM, run.started
	}
	g.running = nil
	run.err = err
	x.mu.Unlock()
	close(run.done)
}

// forgetNIC drops nicID from every index (ARM said it does not exist).
func (x *nicIndex) forgetNIC(nicID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, g := range x.groups {
		for vm, nics := range g.byVM {
			for i, n := range nics {
				if SameID(*n.ID, nicID) {
					g.byVM[vm] = append(nics[:i:i], nics[i+1:]...)
					break
				}
			}
			if len(g.byVM[vm]) == 0 {
				delete(g.byVM, vm)
			}
		}
	}
}

// group returns the index of a group, creating it. Requires x.mu.
func (x *nicIndex) group(key string) *groupIndex {
	if x.groups == nil {
		x.groups = map[string]*groupIndex{}
	}
	g := x.groups[key]
	if g == nil {
		g = &groupIndex{}
		x.groups[key] = g
	}
	return g
}
