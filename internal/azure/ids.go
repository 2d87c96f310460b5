package azure

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnsupportedProvider is wrapped when a node's providerID is not a plain Azure VM
// (VMSS uniform instances and non-Azure providers are not supported).
var ErrUnsupportedProvider = errors.New("unsupported provider")

// ErrNoProviderID is wrapped when a node has no spec.providerID yet.
var ErrNoProviderID = errors.New("node has no providerID")

// ErrInvalidResourceID is wrapped by every resource ID parse failure.
var ErrInvalidResourceID = errors.New("invalid azure resource id")

// ResourceID is a parsed ARM resource ID; keyword segments are matched case-insensitively
// and names keep the casing of the input.
type ResourceID struct {
	// SubscriptionID is the subscription GUID.
	SubscriptionID string
	// ResourceGroup is the resource group name.
	ResourceGroup string
	// Provider is the resource provider namespace, e.g. "Microsoft.Network".
	Provider string
	// Type is the resource type without the namespace; children include their parents'
	// types, e.g. "virtualNetworks/subnets".
	Type string
	// Name is the resource's own name (the last segment).
	Name string
	// Parent is the enclosing resource for child resources (a subnet's VNet), else nil.
	Parent *ResourceID
}

// String returns the canonical ARM ID of r.
func (r ResourceID) String() string {
	if r.Parent != nil {
		types := strings.Split(r.Type, "/")
		return r.Parent.String() + "/" + types[len(types)-1] + "/" + r.Name
	}
	return "/subscriptions/" + r.SubscriptionID + "/resourceGroups/" + r.ResourceGroup +
		"/providers/" + r.Provider + "/" + r.Type + "/" + r.Name
}

// Is reports whether r has the given namespace and type (case-insensitive).
func (r ResourceID) Is(provider, typ string) bool {
	return strings.EqualFold(r.Provider, provider) && strings.EqualFold(r.Type, typ)
}

// ParseResourceID parses /subscriptions/S/resourceGroups/RG/providers/NS/type/name[/childType/childName...].
func ParseResourceID(id string) (ResourceID, error) {
	segs := strings.Split(strings.Trim(strings.TrimSpace(id), "/"), "/")
	bad := func(why string) (ResourceID, error) {
		return ResourceID{}, fmt.Errorf("parse resource id %q: %s: %w", id, why, ErrInvalidResourceID)
	}
	if id == "" {
		return bad("empty")
	}
	if len(segs) < 8 {
		return bad("too few segments")
	}
	for _, s := range segs {
		if s == "" {
			return bad("empty segment")
		}
	}
	if !strings.EqualFold(segs[0], "subscriptions") || !strings.EqualFold(segs[2], "resourceGroups") ||
		!strings.EqualFold(segs[4], "providers") {
		return bad("want /subscriptions/{id}/resourceGroups/{rg}/providers/{namespace}/...")
	}
	rest := segs[6:]
	if len(rest)%2 != 0 {
		return bad("type without a name")
	}
	var cur *ResourceID
	for i := 0; i < len(rest); i += 2 {
		next := &ResourceID{
			SubscriptionID: segs[1], ResourceGroup: segs[3], Provider: segs[5],
			Type: rest[i], Name: rest[i+1], Parent: cur,
		}
		if cur != nil {
			next.Type = cur.Type + "/" + rest[i]
		}
		cur = next
	}
	return *cur, nil
}

// parseTyped parses id and checks that it names a resource of the given type.
func parseTyped(id, what, provider, typ string) (ResourceID, error) {
	r, err := ParseResourceID(id)
	if err != nil {
		return ResourceID{}, fmt.Errorf("parse %s id: %w", what, err)
	}
	if !r.Is(provider, typ) {
		return ResourceID{}, fmt.Errorf("parse %s id %q: type is %s/%s, want %s/%s: %w",
			what, id, r.Provider, r.Type, provider, typ, ErrInvalidResourceID)
	}
	return r, nil
}

// ParseNICID parses a Microsoft.Network/networkInterfaces ID.
func ParseNICID(id string) (ResourceID, error) {
	return parseTyped(id, "nic", "Microsoft.Network", "networkInterfaces")
}

// ParseSubnetID parses a Microsoft.Network/virtualNetworks/subnets ID.
func ParseSubnetID(id string) (ResourceID, error) {
	return parseTyped(id, "subnet", "Microsoft.Network", "virtualNetworks/subnets")
}

// ParseVNetID parses a Microsoft.Network/virtualNetworks ID.
func ParseVNetID(id string) (ResourceID, error) {
	return parseTyped(id, "vnet", "Microsoft.Network", "virtualNetworks")
}

// ParseVMID parses a Microsoft.Compute/virtualMachines ID (not a VMSS instance).
func ParseVMID(id string) (ResourceID, error) {
	return parseTyped(id, "vm", "Microsoft.Compute", "virtualMachines")
}

// VNetIDFromSubnetID returns the ID of the VNet that holds the subnet.
func VNetIDFromSubnetID(subnetID string) (string, error) {
	r, err := ParseSubnetID(subnetID)
	if err != nil {
		return "", err
	}
	return r.Parent.String(), nil
}

// SameID reports whether two ARM IDs name the same resource (ARM IDs are case-insensitive).
func SameID(a, b string) bool {
	return strings.EqualFold(strings.Trim(a, "/"), strings.Trim(b, "/"))
}

// VMIDFromProviderID turns a Node's spec.providerID ("azure:///subscriptions/.../virtualMachines/NAME")
// into the VM's ARM ID.
func VMIDFromProviderID(providerID string) (string, error) {
	p := strings.TrimSpace(providerID)
	if p == "" {
		return "", fmt.Errorf("resolve vm from providerID: %w", ErrNoProviderID)
	}
	const scheme = "azure://"
	if len(p) < len(scheme) || !strings.EqualFold(p[:len(scheme)], scheme) {
		return "", fmt.Errorf("resolve vm from providerID %q: not an azure:// providerID: %w",
			providerID, ErrUnsupportedProvider)
	}
	path := p[len(scheme):]
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("resolve vm from providerID %q: want azure:///subscriptions/...: %w",
			providerID, ErrUnsupportedProvider)
	}
	r, err := ParseResourceID(path)
	if err != nil {
		return "", fmt.Errorf("resolve vm from providerID %q: %w", providerID, err)
	}
	if r.Is("Microsoft.Compute", "virtualMachineScaleSets/virtualMachines") {
		return "", fmt.Errorf("resolve vm from providerID %q: virtual machine scale set instances "+
			"(uniform orchestration) are not supported, use standalone or flexible-orchestration VMs: %w",
			providerID, ErrUnsupportedProvider)
	}
	if !r.Is("Microsoft.Compute", "virtualMachines") {
		return "", fmt.Errorf("resolve vm from providerID %q: resource is %s/%s, not a virtual machine: %w",
			providerID, r.Provider, r.Type, ErrUnsupportedProvider)
	}
	return "/" + strings.Trim(path, "/"), nil
}
