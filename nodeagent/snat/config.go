package snat

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// DefaultChainName is the nat chain used when Config.ChainName is empty.
const DefaultChainName = "NICPOOL-SNAT"

// DefaultIPForwardPath is the sysctl file Sync sets to 1.
const DefaultIPForwardPath = "/proc/sys/net/ipv4/ip_forward"

const (
	natTable = "nat"
	// postrouting is the built-in chain that holds the jump to ours.
	postrouting = "POSTROUTING"
	// stagingSuffix names the chain a new rule set is built in before the
	// jump moves to it; see the package comment.
	stagingSuffix = "-NEXT"
	// maxChainName is XT_EXTENSION_MAXNAMELEN minus the NUL, less the suffix.
	maxChainName = 28 - len(stagingSuffix)
)

// Comments put on our rules so an operator reading iptables -S knows who
// owns them.
const (
	jumpComment   = "nicpool: SNAT pod traffic leaving the VNet"
	returnComment = "nicpool: no SNAT to non-masquerade CIDR"
	publicComment = "nicpool: no SNAT for a pod with its own public IP"
	snatComment   = "nicpool: SNAT to the node primary IP"
)

var chainNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)

// reservedNames are built-in chains and targets a chain must not be named
// after: Cleanup would flush them.
var reservedNames = map[string]bool{
	"PREROUTING": true, "INPUT": true, "FORWARD": true, "OUTPUT": true, "POSTROUTING": true,
	"ACCEPT": true, "DROP": true, "RETURN": true, "SNAT": true, "DNAT": true, "MASQUERADE": true,
}

// Config describes the SNAT the node needs.
type Config struct {
	// ChainName is the nat chain nicpool owns; DefaultChainName when empty.
	ChainName string
	// PrimaryIP is the node's VNet primary IP, the address pod traffic is
	// SNATed to.
	PrimaryIP string
	// NonMasqueradeCIDRs are the destinations reached with the pod IP as
	// source: the VNet's address space, peered VNets and on-premises ranges.
	// At least one is required, or traffic between pods on different nodes
	// would be SNATed too.
	NonMasqueradeCIDRs []string
	// NoSNATSources are pod IPs whose IP configurations carry a public IP of
	// their own: their traffic leaves with the pod IP, which Azure maps to
	// that public IP.
	NoSNATSources []string
	// PodCIDRs, when set, restricts SNAT to traffic sourced from these
	// ranges; when empty, every source except PrimaryIP is SNATed.
	PodCIDRs []string
	// Interface, when set, restricts SNAT to traffic leaving through it (-o).
	Interface string
	// IPTables replaces the iptables client, for tests; nil uses go-iptables.
	IPTables IPTables
	// IPForwardPath replaces DefaultIPForwardPath: the agent's
	// --ip-forward-sysctl (a container's /proc/sys is read-only), and tests.
	IPForwardPath string
}

// rules is a validated Config turned into iptables rule specs.
type rules struct {
	chain, staging string
	// chainRules is the exact content of our chain, in order.
	chainRules [][]string
}

// validate checks cfg and renders the chain's rules; randomFully adds
// --random-fully to the SNAT rules.
func (cfg Config) validate(randomFully bool) (rules, error) {
	var errs []error
	chain := cfg.ChainName
	if chain == "" {
		chain = DefaultChainName
	}
	if len(chain) > maxChainName || !chainNameRE.MatchString(chain) || reservedNames[strings.ToUpper(chain)] {
		errs = append(errs, fmt.Errorf("chain name %q: want at most %d letters, digits, '_' or '-', not starting with '-' and not a built-in chain or target", chain, maxChainName))
	}
	primary, err := netip.ParseAddr(cfg.PrimaryIP)
	if err != nil || !primary.Is4() {
		errs = append(errs, fmt.Errorf("primary IP %q: not an IPv4 address", cfg.PrimaryIP))
	}
	nonMasq, err := parseCIDRs("non-masquerade CIDR", cfg.NonMasqueradeCIDRs)
	errs = append(errs, err)
	if len(cfg.NonMasqueradeCIDRs) == 0 {
		errs = append(errs, errors.New("non-masquerade CIDRs: at least the VNet address space is required"))
	}
	pods, err := parseCIDRs("pod CIDR", cfg.PodCIDRs)
	errs = append(errs, err)
	var own []netip.Prefix
	for _, s := range cfg.NoSNATSources {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			errs = append(errs, fmt.Errorf("no-SNAT source %q: not an IPv4 address", s))
			continue
		}
		own = append(own, netip.PrefixFrom(a, 32))
	}
	own, _ = parseCIDRs("no-SNAT source", prefixStrings(own))
	if strings.ContainsAny(cfg.Interface, " \t\n/") || len(cfg.Interface) > 15 {
		errs = append(errs, fmt.Errorf("interface %q: not a valid interface name", cfg.Interface))
	}
	if err := errors.Join(errs...); err != nil {
		return rules{}, fmt.Errorf("validate snat config: %w", err)
	}

	r := rules{chain: chain, staging: chain + stagingSuffix}
	for _, p := range own {
		r.chainRules = append(r.chainRules,
			[]string{"-s", p.String(), "-m", "comment", "--comment", publicComment, "-j", "RETURN"})
	}
	for _, p := range nonMasq {
		r.chainRules = append(r.chainRules,
			[]string{"-d", p.String(), "-m", "comment", "--comment", returnComment, "-j", "RETURN"})
	}
	snat := []string{"-j", "SNAT", "--to-source", primary.String()}
	if randomFully {
		snat = append(snat, "--random-fully")
	}
	// Loopback traffic never leaves the node: SNATing it would hand local
	// services the primary IP as peer and, where conntrack starts with our
	// nat table, break loopback connections already open (see doc.go).
	out := []string{"!", "-o", "lo"}
	if cfg.Interface != "" {
		out = []string{"-o", cfg.Interface}
	}
	comment := []string{"-m", "comment", "--comment", snatComment}
	sources := [][]string{{"!", "-s", primary.String() + "/32"}}
	if len(pods) > 0 {
		sources = nil
		for _, p := range pods {
			sources = append(sources, []string{"-s", p.String()})
		}
	}
	for _, src := range sources {
		r.chainRules = append(r.chainRules, slices.Concat(src, out, comment, snat))
	}
	return r, nil
}

// parseCIDRs parses IPv4 prefixes, masks their host bits as iptables does,
// and returns them sorted and without duplicates so that the order of the
// configuration does not churn the chain.
func parseCIDRs(what string, in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, s := range in {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			errs = append(errs, fmt.Errorf("%s %q: not an IPv4 CIDR", what, s))
			continue
		}
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out), errors.Join(errs...)
}

// jumpSpec is the POSTROUTING rule that sends traffic to chain.
func jumpSpec(chain string) []string {
	return []string{"-m", "comment", "--comment", jumpComment, "-j", chain}
}

// listLine renders spec the way `iptables -S` prints it, so the chain read
// back can be compared with what we want.
func listLine(chain string, spec []string) string {
	var b strings.Builder
	b.WriteString("-A " + chain)
	for i, arg := range spec {
		b.WriteByte(' ')
		if i > 0 && spec[i-1] == "--comment" {
			b.WriteString(saveQuote(arg))
			continue
		}
		b.WriteString(arg)
	}
	return b.String()
}

// saveQuote quotes a string like iptables' xtables_save_string.
func saveQuote(s string) string {
	const plain = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune(plain, r) }) < 0 {
		return s
	}
	r := strings.NewReplacer(`"`, `\"`, `\`, `\\`, `'`, `\'`)
	return `"` + r.Replace(s) + `"`
}

// prefixStrings renders prefixes for parseCIDRs.
func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
