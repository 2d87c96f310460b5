package nodeagent

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/nicpool/nicpool/nodeagent/ipam"
)

// serviceNameRE is the shape of an Azure service name such as Microsoft.Storage.
var serviceNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.]*$`)

// parseServiceEndpointPrefixes parses --service-endpoint-prefixes values,
// each "Service=cidr[,cidr...]", into lower-case service names and their
// prefixes. A service may appear in several values; its prefixes add up.
func parseServiceEndpointPrefixes(values []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, v := range values {
		svc, list, ok := strings.Cut(v, "=")
		svc = strings.TrimSpace(svc)
		if !ok || !serviceNameRE.MatchString(svc) || strings.TrimSpace(list) == "" {
			return nil, fmt.Errorf("--service-endpoint-prefixes: %q is not Service=cidr[,cidr...] (for example Microsoft.Storage=20.60.0.0/16)", v)
		}
		for _, c := range strings.Split(list, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(c))
			if err != nil || !p.Addr().Is4() || p.Masked() != p {
				return nil, fmt.Errorf("--service-endpoint-prefixes: %q of %s is not an IPv4 CIDR without host bits", c, svc)
			}
			key := strings.ToLower(svc)
			if !slices.Contains(out[key], p.String()) {
				out[key] = append(out[key], p.String())
			}
		}
	}
	return out, nil
}

// nonMasqueradeCIDRs is every destination the node's pods reach with their
// own address: the VNet, --non-masquerade-cidrs, and the prefixes configured
// for each service whose endpoint the pool's subnet has enabled (a service
// without an endpoint on this subnet is reached through SNAT to the node, as
// the VNet would drop a secondary address leaving it towards a public one).
func nonMasqueradeCIDRs(p ipam.PoolState, extra []string, services map[string][]string) []string {
	out := append(slices.Clone(p.VNetAddressSpace), extra...)
	for _, svc := range p.ServiceEndpoints {
		for _, c := range services[strings.ToLower(svc)] {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}
