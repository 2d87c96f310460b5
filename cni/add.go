package cni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	cnins "github.com/containernetworking/cni/pkg/ns"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// Steps of ADD, named in logs and in failure-injection tests.
const (
	stepAllocate = "allocate"
	stepVeth     = "veth"
	stepPod      = "pod"
	stepHost     = "host"
	stepRoute    = "route"
	stepResult   = "result"
)

// afterStep is a test seam called after each step of ADD; a non-nil error
// fails ADD there, which proves the rollback of every earlier step.
var afterStep = func(step string) error { return nil }

// stdout is where results go; tests calling verbs in-process replace it.
var stdout io.Writer = os.Stdout

// CmdAdd implements CNI ADD: it takes an IP from the agent and wires the pod.
func CmdAdd(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	log, closeLog := newLogger(conf, "ADD", args)
	defer closeLog()
	err = add(args, conf, log)
	logOutcome(log, err)
	return err
}

// add does ADD's work once the configuration is valid.
func add(args *skel.CmdArgs, conf *NetConf, log *slog.Logger) error {
	if err := conf.parsePrevResult(); err != nil {
		return err
	}
	pod, err := parsePodArgs(args.Args)
	if err != nil {
		return err
	}
	if err := checkNotOwnNetNS(args); err != nil {
		return err
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("open netns %q: %v", args.Netns, err), "")
	}
	// The handle is only read; closing it cannot lose anything.
	defer func() { _ = netns.Close() }()
	mtu, err := resolveMTU(conf.MTU)
	if err != nil {
		return err
	}

	agent := newAgent(conf)
	key := attachmentKey(conf, args)
	alloc, err := allocate(agent, conf, agentapi.Attachment{
		AttachmentKey: key, PodNamespace: pod.Namespace, PodName: pod.Name, PodUID: pod.UID, NetNS: args.Netns,
	})
	if err != nil {
		return err
	}
	hostName := hostVethName(key)
	committed := false
	defer func() {
		if !committed {
			rollbackAdd(agent, key, hostName, log)
		}
	}()
	if err := afterStep(stepAllocate); err != nil {
		return err
	}
	ip := net.ParseIP(alloc.IP).To4()
	if ip == nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("allocate pod ip: agent returned %q, not an ipv4 address", alloc.IP), "")
	}
	log.Info("Allocated IP", "ip", ip.String())

	result, err := wire(args, conf, netns, hostName, ip, mtu)
	if err != nil {
		return err
	}
	if err := afterStep(stepResult); err != nil {
		return err
	}
	if err := printResult(result, conf.CNIVersion); err != nil {
		return err
	}
	committed = true
	return nil
}

// printResult writes the result in the version the runtime asked for.
func printResult(result *current.Result, cniVersion string) error {
	versioned, err := result.GetAsVersion(cniVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("convert result to %s: %v", cniVersion, err), "")
	}
	if err := versioned.PrintTo(stdout); err != nil {
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("print result: %v", err), "")
	}
	return nil
}

// checkNotOwnNetNS refuses a CNI_NETNS that is the node's own namespace.
// skel checks this only after ADD has run, too late: the node would have
// lost an interface name to a pod end and kept a committed attachment.
func checkNotOwnNetNS(args *skel.CmdArgs) error {
	if o := strings.ToLower(args.NetnsOverride); o == "1" || o == "true" {
		return nil
	}
	same, cerr := cnins.CheckNetNS(args.Netns)
	if cerr != nil {
		return types.NewError(cerr.Code, fmt.Sprintf("check netns %q: %s", args.Netns, cerr.Msg), cerr.Details)
	}
	if same {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("netns %q is the plugin's own namespace, not a container's", args.Netns), "")
	}
	return nil
}

// allocate asks the agent for the attachment's IP, waiting at most the
// configured timeout. When the wait times out the agent may still have
// allocated, so the IP is released at once rather than left for the
// runtime's DEL.
func allocate(agent *agentapi.Client, conf *NetConf, att agentapi.Attachment) (*agentapi.AllocateResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), conf.Timeout())
	defer cancel()
	alloc, err := agent.Allocate(ctx, agentapi.AllocateRequest{Attachment: att})
	if err == nil {
		return alloc, nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		_ = releaseIP(agent, att.AttachmentKey)
	}
	return nil, agentError("allocate pod ip", err)
}

// wire creates the veth pair, configures both ends and returns the result.
// A repeated ADD for the same attachment finds its old veth and replaces
// it, so the runtime gets the same IP and a freshly verified datapath.
func wire(args *skel.CmdArgs, conf *NetConf, netns ns.NetNS, hostName string, ip net.IP, mtu int) (*current.Result, error) {
	if err := deleteHostVeth(hostName); err != nil {
		return nil, err
	}
	if _, err := lookupHostVeth(hostName); err != nil {
		return nil, err
	}
	host, err := createVeth(hostName, args.IfName, mtu, netns)
	if err != nil {
		return nil, err
	}
	if err := afterStep(stepVeth); err != nil {
		return nil, err
	}
	var podEnd podLink
	err = netns.Do(func(ns.NetNS) error {
		var err error
		podEnd, err = configurePod(args.IfName, ip, host.Attrs().HardwareAddr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("configure pod end in netns %s: %w", args.Netns, err)
	}
	if err := afterStep(stepPod); err != nil {
		return nil, err
	}
	if err := configureHost(hostName); err != nil {
		return nil, err
	}
	if err := afterStep(stepHost); err != nil {
		return nil, err
	}
	if err := addHostRoute(ip, host); err != nil {
		return nil, err
	}
	if err := afterStep(stepRoute); err != nil {
		return nil, err
	}
	return buildResult(conf, args, host, podEnd, ip, mtu)
}

// rollbackAdd undoes a failed ADD: the veth goes first (taking its routes
// and the pod end with it), then the IP. If the veth cannot be removed the
// IP is kept, because handing it to another pod while this datapath still
// routes it would break the one-IP-one-pod invariant; the runtime's DEL
// after a failed ADD retries both.
func rollbackAdd(agent *agentapi.Client, key agentapi.AttachmentKey, hostName string, log *slog.Logger) {
	if err := deleteHostVeth(hostName); err != nil {
		log.Error("Rollback kept the IP because the veth could not be removed", "err", err)
		fmt.Fprintf(os.Stderr, "nicpool: rollback: %v\n", err)
		return
	}
	if err := releaseIP(agent, key); err != nil {
		log.Error("Rollback could not release the IP", "err", err)
		fmt.Fprintf(os.Stderr, "nicpool: rollback: %v\n", err)
		return
	}
	log.Info("Rolled back ADD")
}

// buildResult assembles the full result, appended to prevResult when some
// plugin ran before nicpool in the chain.
func buildResult(conf *NetConf, args *skel.CmdArgs, host netlink.Link, podEnd podLink, ip net.IP, mtu int) (*current.Result, error) {
	result := &current.Result{CNIVersion: current.ImplementedSpecVersion, DNS: conf.DNS}
	if conf.PrevResult != nil {
		prev, err := current.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("convert prevResult: %v", err), "")
		}
		result = prev
		if result.DNS.IsEmpty() {
			result.DNS = conf.DNS
		}
	}
	base := len(result.Interfaces)
	result.Interfaces = append(result.Interfaces,
		&current.Interface{Name: host.Attrs().Name, Mac: host.Attrs().HardwareAddr.String(), Mtu: mtu},
		&current.Interface{Name: args.IfName, Mac: podEnd.MAC.String(), Mtu: mtu, Sandbox: args.Netns},
	)
	result.IPs = append(result.IPs, &current.IPConfig{
		Interface: current.Int(base + 1),
		Address:   *hostPrefix(ip),
		Gateway:   gatewayIP,
	})
	result.Routes = append(result.Routes, &types.Route{Dst: *defaultDst(), GW: gatewayIP})
	return result, nil
}
