package azure

import (
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// Provisioning is what a NIC's properties.provisioningState tells the operator about its
// last write: whether the IP configurations it shows have been applied.
type Provisioning int

const (
	// ProvisioningSucceeded means the last write completed: every IP configuration shown
	// is in effect. A NIC without a provisioningState (fakes; Azure always sends one)
	// counts as succeeded.
	ProvisioningSucceeded Provisioning = iota
	// ProvisioningInProgress means a write is still running (Updating, Creating,
	// Deleting, or a state this package does not know): ARM already shows the write's
	// IP configurations, addresses included, but they are not in effect yet.
	ProvisioningInProgress
	// ProvisioningFailed means the last operation ended Failed (or Canceled): the
	// configurations it wrote are listed but may not be in effect. Azure's remedy is to
	// re-apply the resource (read it and PUT it back).
	ProvisioningFailed
)

var provisioningNames = [...]string{
	ProvisioningSucceeded:  "Succeeded",
	ProvisioningInProgress: "InProgress",
	ProvisioningFailed:     "Failed",
}

// String returns the state's name, e.g. "Failed".
func (p Provisioning) String() string {
	if p < 0 || int(p) >= len(provisioningNames) {
		return "Provisioning(" + strconv.Itoa(int(p)) + ")"
	}
	return provisioningNames[p]
}

// NICProvisioning classifies nic's provisioningState. Only Succeeded (or no state at
// all) lets a caller treat the NIC's IP configurations as delivered.
func NICProvisioning(nic *armnetwork.Interface) Provisioning {
	if nic == nil || nic.Properties == nil || nic.Properties.ProvisioningState == nil {
		return ProvisioningSucceeded
	}
	return provisioningOf(string(*nic.Properties.ProvisioningState))
}

// NICProvisioningState returns nic's provisioningState as ARM spelled it ("" if absent).
func NICProvisioningState(nic *armnetwork.Interface) string {
	if nic == nil || nic.Properties == nil || nic.Properties.ProvisioningState == nil {
		return ""
	}
	return string(*nic.Properties.ProvisioningState)
}

func provisioningOf(state string) Provisioning {
	switch strings.ToLower(state) {
	case "succeeded":
		return ProvisioningSucceeded
	case "failed", "canceled", "cancelled":
		return ProvisioningFailed
	default:
		// Updating, Creating, Deleting, Accepted and any state added later: not in
		// effect yet, and not failed either, so the caller waits rather than repairs.
		return ProvisioningInProgress
	}
}
