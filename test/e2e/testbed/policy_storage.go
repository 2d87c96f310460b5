package testbed

import (
	"slices"

	"github.com/nicpool/nicpool/internal/armsim"
)

// Paths to the storage site (Config.Storage). Azure sends traffic from a subnet with
// the Microsoft.Storage service endpoint to Storage over its backbone with the private
// source address and the subnet's identity; anything else reaches Storage's public
// endpoint as internet traffic: from a public IP's owner as that public IP, from other
// primary IPs through default outbound access (SNAT to a public address), and not at
// all from other addresses (the static rules after the hook drop them, as for the
// internet site).

// endpointSubnets returns the prefixes of the subnets with the storage endpoint.
func (b *policyBuilder) endpointSubnets() []string {
	var out []string
	for _, sn := range b.in.net.Subnets {
		if slices.Contains(sn.ServiceEndpoints, armsim.ServiceStorage) {
			out = append(out, sn.Prefix.String())
		}
	}
	return out
}

// storagePaths are the forward chain's accepts towards storage (after the NSGs):
// service endpoint subnets, and private addresses holding a public IP.
func (b *policyBuilder) storagePaths() [][]string {
	if !b.in.storage {
		return nil
	}
	var out [][]string
	for _, p := range b.endpointSubnets() {
		out = append(out, []string{"-o", storageLinkNm, "-s", p, "-m", "comment", "--comment", "service endpoint", "-j", "ACCEPT"})
	}
	for _, pip := range b.in.net.PublicIPs {
		if pip.PrivateIP.IsValid() {
			out = append(out, []string{"-o", storageLinkNm, "-s", pip.PrivateIP.String() + "/32", "-j", "ACCEPT"})
		}
	}
	return out
}

// storageNAT is POSTROUTING's translation towards storage: none over a service
// endpoint, a public IP's address for its owner, else, from the VNet, default outbound
// access (the internet keeps its own address).
func (b *policyBuilder) storageNAT() [][]string {
	if !b.in.storage {
		return nil
	}
	var out [][]string
	for _, p := range b.endpointSubnets() {
		out = append(out, []string{"-o", storageLinkNm, "-s", p, "-j", "RETURN"})
	}
	for _, pip := range b.in.net.PublicIPs {
		if pip.PrivateIP.IsValid() {
			out = append(out, []string{"-o", storageLinkNm, "-s", pip.PrivateIP.String() + "/32", "-j", "SNAT", "--to-source", pip.IP.String()})
		}
	}
	for _, v := range b.in.net.VNets {
		for _, p := range v.AddressSpace {
			out = append(out, []string{"-o", storageLinkNm, "-s", p.String(), "-j", "SNAT", "--to-source", DefaultOutboundIP})
		}
	}
	return out
}
