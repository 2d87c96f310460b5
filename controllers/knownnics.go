package controllers

import (
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/azure"
)

// defaultKnownNICTTL is how long a NIC's last known state stands in for a
// read at the start of a pass.
const defaultKnownNICTTL = 2 * time.Minute

// knownNICs remembers each NIC as a pass last saw it settled (provisioningState
// Succeeded): the result of its write, or its read. The next pass on the NIC
// starts from it instead of spending an ARM read. That is safe because every
// write carries If-Match with the remembered etag: a NIC changed since (by
// anyone) refuses the write with 412 and the pass re-reads it. A pass that
// writes nothing publishes what it remembers, so the memory is trusted only for
// a while (a change by someone else shows up at the latest then), dropped on any
// ARM failure of a pass, and not kept across restarts (adoption reads afresh).
// Entries are deep copies (deepCopy), so a pass can change its copy freely.
type knownNICs struct {
	mu sync.Mutex
	m  map[string]knownNIC // by lower-case NIC ID
}

type knownNIC struct {
	nic *armnetwork.Interface
	at  time.Time
}

// get returns a private copy of the NIC's remembered state if it is younger
// than ttl, else nil.
func (k *knownNICs) get(nicID string, now time.Time, ttl time.Duration) *armnetwork.Interface {
	k.mu.Lock()
	e, ok := k.m[strings.ToLower(nicID)]
	k.mu.Unlock()
	if !ok || now.Sub(e.at) >= ttl {
		return nil
	}
	return deepCopy(e.nic)
}

// remember records nic as read or written at now, if it is settled; a NIC
// with a write running or failed is forgotten, so the next pass reads it.
func (k *knownNICs) remember(nic *armnetwork.Interface, now time.Time) {
	if nic == nil || nic.ID == nil || nic.Etag == nil {
		return
	}
	if azure.NICProvisioning(nic) != azure.ProvisioningSucceeded || azure.NICProvisioningState(nic) == "" {
		k.forget(*nic.ID)
		return
	}
	kept := deepCopy(nic)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]knownNIC{}
	}
	k.m[strings.ToLower(*nic.ID)] = knownNIC{nic: kept, at: now}
}

// forget drops what is remembered about the NIC.
func (k *knownNICs) forget(nicID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, strings.ToLower(nicID))
}
