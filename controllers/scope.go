package controllers

import (
	"fmt"
	"strings"

	"github.com/nicpool/nicpool/internal/azure"
)

// Scope limits the NICs the operator may write to one subscription and,
// optionally, one resource group. A Node's providerID or a pool's nicID
// pointing elsewhere (a typo, or a VM of another cluster) then gets a clear
// condition instead of a write to someone else's NIC. The zero Scope allows
// every NIC the identity can reach.
type Scope struct {
	// SubscriptionID, when set, is the only subscription whose NICs are managed.
	SubscriptionID string
	// ResourceGroup, when set, is the only resource group whose NICs are managed.
	ResourceGroup string
}

// Allows returns nil when nicID lies inside the scope, and otherwise an
// error saying why not.
func (s Scope) Allows(nicID string) error {
	if s.SubscriptionID == "" && s.ResourceGroup == "" {
		return nil
	}
	id, err := azure.ParseNICID(nicID)
	if err != nil {
		return fmt.Errorf("check scope of nic %q: %w", nicID, err)
	}
	if s.SubscriptionID != "" && !strings.EqualFold(id.SubscriptionID, s.SubscriptionID) {
		return fmt.Errorf("nic %s is in subscription %s; this operator manages only subscription %s (--subscription-id)", nicID, id.SubscriptionID, s.SubscriptionID)
	}
	if s.ResourceGroup != "" && !strings.EqualFold(id.ResourceGroup, s.ResourceGroup) {
		return fmt.Errorf("nic %s is in resource group %s; this operator manages only resource group %s (--resource-group)", nicID, id.ResourceGroup, s.ResourceGroup)
	}
	return nil
}

func (s Scope) validate() error {
	for flag, v := range map[string]string{"--subscription-id": s.SubscriptionID, "--resource-group": s.ResourceGroup} {
		if strings.ContainsAny(v, "/ \t") {
			return fmt.Errorf("%s=%q: must be a bare name or ID, without slashes or spaces", flag, v)
		}
	}
	return nil
}
