package armsim

import (
	"net/http"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// ServiceStorage is the service name of Azure Storage's VNet service endpoint.
const ServiceStorage = "Microsoft.Storage"

// endpointServices are the services a subnet may carry a service endpoint for, in
// Azure's spelling (`az network vnet list-endpoint-services`); names match
// case-insensitively and are rendered as listed here.
var endpointServices = []string{
	"Microsoft.AzureActiveDirectory", "Microsoft.AzureCosmosDB", "Microsoft.CognitiveServices",
	"Microsoft.ContainerRegistry", "Microsoft.EventHub", "Microsoft.KeyVault", "Microsoft.ServiceBus",
	"Microsoft.Sql", ServiceStorage, "Microsoft.Storage.Global", "Microsoft.Web",
}

// serviceEndpoint is one service endpoint of a subnet. Guarded by Server.mu.
type serviceEndpoint struct {
	service   string   // canonical spelling, from endpointServices
	locations []string // lower-case regions, or "*"
}

// canonicalService returns the canonical name of an endpoint service, or "".
func canonicalService(name string) string {
	for _, s := range endpointServices {
		if strings.EqualFold(s, strings.TrimSpace(name)) {
			return s
		}
	}
	return ""
}

// parseServiceEndpoints validates a subnet body's serviceEndpoints as Azure does: a
// known service, at most once per subnet, locations defaulting to the VNet's region.
// An absent list (nil) removes every endpoint, as a PUT replaces the subnet.
func (s *Server) parseServiceEndpoints(sn *subnet, in []*armnetwork.ServiceEndpointPropertiesFormat) ([]serviceEndpoint, *armError) {
	var out []serviceEndpoint
	seen := map[string]bool{}
	for _, e := range in {
		if e == nil || e.Service == nil {
			return nil, errorf(http.StatusBadRequest, CodeInvalidServiceNameOnServiceEndpoint,
				"Subnet %s has a service endpoint without a service name.", sn.id)
		}
		svc := canonicalService(*e.Service)
		if svc == "" {
			return nil, errorf(http.StatusBadRequest, CodeInvalidServiceNameOnServiceEndpoint,
				"Subnet %s has an invalid service name %s in its service endpoints. Valid names: %s.", sn.id, *e.Service, strings.Join(endpointServices, ", "))
		}
		if seen[svc] {
			return nil, errorf(http.StatusBadRequest, CodeDuplicateServiceEndpoint,
				"Subnet %s lists the service endpoint %s more than once.", sn.id, svc)
		}
		seen[svc] = true
		ep := serviceEndpoint{service: svc}
		for _, l := range e.Locations {
			if l == nil || strings.TrimSpace(*l) == "" {
				return nil, errorf(http.StatusBadRequest, CodeInvalidRequestFormat,
					"Service endpoint %s of subnet %s has an empty location.", svc, sn.id)
			}
			ep.locations = append(ep.locations, strings.ToLower(strings.ReplaceAll(*l, " ", "")))
		}
		if len(ep.locations) == 0 {
			ep.locations = []string{s.location}
		}
		out = append(out, ep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].service < out[j].service })
	return out, nil
}

// renderServiceEndpoints converts a subnet's endpoints into the armnetwork model.
func renderServiceEndpoints(eps []serviceEndpoint) []*armnetwork.ServiceEndpointPropertiesFormat {
	out := make([]*armnetwork.ServiceEndpointPropertiesFormat, 0, len(eps))
	for _, e := range eps {
		out = append(out, &armnetwork.ServiceEndpointPropertiesFormat{
			Service:           to.Ptr(e.service),
			Locations:         to.SliceOfPtrs(e.locations...),
			ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded),
		})
	}
	return out
}

// endpointServiceNames lists the services of eps.
func endpointServiceNames(eps []serviceEndpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.service)
	}
	return out
}
