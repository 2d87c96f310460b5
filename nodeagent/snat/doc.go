// Package snat programs the node-level networking the nicpool datapath needs:
// IPv4 forwarding and a dedicated iptables chain in nat POSTROUTING that
// SNATs pod traffic leaving the VNet to the node's primary IP.
//
// # Which traffic is SNATed
//
// Pods hold secondary IPs from the node's own subnet, and that set grows and
// shrinks with the pool. Listing pod IPs in the chain would rewrite it on
// every allocation, so by default the chain matches on what pod traffic is
// not: every packet whose source is not the primary IP and whose destination
// is outside Config.NonMasqueradeCIDRs is SNATed. Anything else leaving the
// node with a non-primary source towards the internet would be dropped by
// Azure anyway (only the primary IP configuration has outbound connectivity),
// so SNAT is the only way it can work. Rules placed earlier in POSTROUTING
// (kube-proxy's KUBE-POSTROUTING, Docker's MASQUERADE) still win, because the
// jump to our chain is appended, as ip-masq-agent does. When Config.PodCIDRs
// is set, only traffic sourced from those ranges is SNATed.
//
// Loopback traffic is never SNATed (`! -o lo`): it cannot leave the node, and
// matching it would rewrite local connections to the primary IP. Worse, on a
// node where nothing used conntrack before, the first Sync turns it on:
// conntrack then picks up loopback connections already open mid-stream as
// new ones, so their next packet would be SNATed and the connection broken
// (one end reset, the other silent until it next sends).
//
// # SNAT rather than MASQUERADE
//
// The design says pod traffic leaves as the node's primary IP. MASQUERADE
// would pick the egress interface's preferred source address instead, which
// is the primary IP only as long as nothing else is configured on that
// interface, and it looks that address up per connection. The primary IP of
// an Azure NIC is fixed for the VM's lifetime, so SNAT --to-source names it
// explicitly and cheaply. --random-fully is added when iptables supports it,
// as kube-proxy does, to avoid source-port collisions between pods.
//
// # Rewriting without a half chain
//
// go-iptables has no iptables-restore, so a rule set cannot be replaced in one
// kernel transaction. Flushing and refilling the live chain would let a packet
// see it empty or missing its RETURN rules, and conntrack would pin that
// wrong decision for the whole connection. Instead, when the rules differ,
// Sync fills a staging chain (ChainName + "-NEXT") completely, inserts a jump
// to it just before the jump to the live chain and only then deletes the old
// jump; then it rewrites the now unreferenced live chain and moves the jump
// back the same way. While two jumps coexist, a packet RETURNed by the first
// chain is judged by the second, so every packet gets the verdict of either
// the old or the new configuration, never of a partial one. A crash between
// steps leaves complete chains behind, and the next Sync converges.
//
// All of this is IPv4 only: nicpool gives pods IPv4 VNet addresses.
package snat
