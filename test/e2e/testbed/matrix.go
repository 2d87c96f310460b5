package testbed

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Path is one connectivity check: a connection from a namespace to an
// address, and what the destination must see as the source (or that the
// connection must fail).
type Path struct {
	Name     string
	From     *Namespace
	FromName string
	To       string // destination IP
	ToName   string
	WantSeen string // expected source address at the destination; "" with WantFail
	WantFail bool
}

// PathResult is the outcome of a Path.
type PathResult struct {
	Path
	Seen string
	Err  error
}

// OK reports whether the path behaved as required.
func (r PathResult) OK() bool {
	if r.WantFail {
		return r.Err != nil
	}
	return r.Err == nil && r.Seen == r.WantSeen
}

// StandardPaths are the connectivity promises of nicpool for two pods a and b
// on different VMs (and c on a's VM, when given): pod to pod on one node and
// across nodes, pod to VM and VM to pod, to and from a peered VNet and
// on-premises without SNAT, to the internet with SNAT to the node's primary
// IP, and no way in from the internet.
func (tb *Testbed) StandardPaths(a, b, c *Pod) []Path {
	peer, onprem, inet := tb.Sites["peer"], tb.Sites["onprem"], tb.Sites["internet"]
	paths := []Path{
		{Name: "pod to pod, across nodes", From: a.NS, FromName: a.Name, To: b.IP, ToName: b.Name, WantSeen: a.IP},
		{Name: "pod to other VM", From: a.NS, FromName: a.Name, To: b.VM.PrimaryIP, ToName: b.VM.Name, WantSeen: a.IP},
		{Name: "VM to pod on it", From: a.VM.NS, FromName: a.VM.Name, To: a.IP, ToName: a.Name, WantSeen: a.VM.PrimaryIP},
		{Name: "pod to peered VNet", From: a.NS, FromName: a.Name, To: peer.HostIP, ToName: "peer-vnet", WantSeen: a.IP},
		{Name: "peered VNet to pod", From: peer.NS, FromName: "peer-vnet", To: b.IP, ToName: b.Name, WantSeen: peer.HostIP},
		{Name: "pod to on-premises", From: b.NS, FromName: b.Name, To: onprem.HostIP, ToName: "on-prem", WantSeen: b.IP},
		{Name: "on-premises to pod", From: onprem.NS, FromName: "on-prem", To: a.IP, ToName: a.Name, WantSeen: onprem.HostIP},
		{Name: "pod to internet (SNAT)", From: a.NS, FromName: a.Name, To: inet.HostIP, ToName: "internet", WantSeen: a.VM.PrimaryIP},
		{Name: "pod to internet (SNAT)", From: b.NS, FromName: b.Name, To: inet.HostIP, ToName: "internet", WantSeen: b.VM.PrimaryIP},
		{Name: "internet to pod (blocked)", From: inet.NS, FromName: "internet", To: a.IP, ToName: a.Name, WantFail: true},
	}
	if c != nil {
		paths = append(paths, Path{Name: "pod to pod, same node", From: c.NS, FromName: c.Name, To: a.IP, ToName: a.Name, WantSeen: c.IP})
	}
	return paths
}

// StartProbeServers starts a probe server in every pod given, every VM and
// every site.
func (tb *Testbed) StartProbeServers(ctx context.Context, pods ...*Pod) error {
	for _, p := range pods {
		if err := tb.StartProbeServer(ctx, p.NS); err != nil {
			return err
		}
	}
	for _, vm := range tb.VMs {
		if err := tb.StartProbeServer(ctx, vm.NS); err != nil {
			return err
		}
	}
	for _, s := range tb.Sites {
		if err := tb.StartProbeServer(ctx, s.NS); err != nil {
			return err
		}
	}
	return nil
}

// RunPaths runs each path. A path that must succeed is retried for up to
// settle (the fabric follows ARM with a delay); one that must fail is tried once.
func RunPaths(ctx context.Context, paths []Path, settle time.Duration) []PathResult {
	out := make([]PathResult, 0, len(paths))
	for _, p := range paths {
		r := PathResult{Path: p}
		if p.WantFail {
			r.Seen, r.Err = Probe(ctx, p.From, p.To)
		} else {
			r.Seen, r.Err = ProbeEventually(ctx, p.From, p.To, settle)
		}
		out = append(out, r)
	}
	return out
}

// FormatMatrix renders results as a table.
func FormatMatrix(results []PathResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-27s %-12s %-12s %-15s %-16s %s\n", "PATH", "FROM", "TO", "TO IP", "SOURCE SEEN", "RESULT")
	for _, r := range results {
		seen := r.Seen
		if r.Err != nil {
			seen = "(no connection)"
		}
		verdict := "ok"
		if !r.OK() {
			verdict = "FAIL"
			if r.WantFail {
				verdict += " (expected blocked)"
			} else {
				verdict += fmt.Sprintf(" (want %s)", r.WantSeen)
			}
		}
		fmt.Fprintf(&b, "%-27s %-12s %-12s %-15s %-16s %s\n", r.Name, r.FromName, r.ToName, r.To, seen, verdict)
	}
	return b.String()
}
