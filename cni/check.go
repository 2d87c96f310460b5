package cni

import (
	"context"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// CmdCheck implements CNI CHECK: the agent's record, the host veth and
// route, and the pod's interface, address, neighbor and routes must all
// match prevResult.
func CmdCheck(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	log, closeLog := newLogger(conf, "CHECK", args)
	defer closeLog()
	err = check(args, conf)
	logOutcome(log, err)
	return err
}

// expected is what prevResult says nicpool created.
type expected struct {
	hostMAC string
	podMAC  string
	ip      net.IP
}

func check(args *skel.CmdArgs, conf *NetConf) error {
	if err := conf.parsePrevResult(); err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "check: prevResult is required", "")
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("check: convert prevResult: %v", err), "")
	}
	key := attachmentKey(conf, args)
	hostName := hostVethName(key)
	want, err := expectedFrom(prev, hostName, args)
	if err != nil {
		return err
	}
	if err := checkAgent(conf, key, want.ip); err != nil {
		return err
	}
	if err := checkHost(hostName, want); err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("check host side: %v", err), "")
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("check: open netns %q: %v", args.Netns, err), "")
	}
	// The handle is only read; closing it cannot lose anything.
	defer func() { _ = netns.Close() }()
	hostMAC, _ := net.ParseMAC(want.hostMAC)
	err = netns.Do(func(ns.NetNS) error {
		return verifyPod(args.IfName, want.podMAC, want.ip, hostMAC)
	})
	if err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("check pod side: %v", err), "")
	}
	return nil
}

// expectedFrom finds nicpool's interfaces and IP in a (possibly chained)
// prevResult.
func expectedFrom(prev *current.Result, hostName string, args *skel.CmdArgs) (expected, error) {
	var want expected
	podIdx := -1
	for i, iface := range prev.Interfaces {
		switch {
		case iface.Name == hostName && iface.Sandbox == "":
			want.hostMAC = iface.Mac
		case iface.Name == args.IfName && iface.Sandbox != "":
			want.podMAC = iface.Mac
			podIdx = i
		}
	}
	for _, ipc := range prev.IPs {
		if ipc.Interface != nil && *ipc.Interface == podIdx && ipc.Address.IP.To4() != nil {
			want.ip = ipc.Address.IP.To4()
		}
	}
	if want.hostMAC == "" || podIdx < 0 || want.ip == nil {
		return want, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("check: prevResult lacks host interface %s, container interface %s or its ipv4 address", hostName, args.IfName), "")
	}
	if _, err := net.ParseMAC(want.hostMAC); err != nil {
		return want, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("check: prevResult host mac %q: %v", want.hostMAC, err), "")
	}
	return want, nil
}

// checkAgent confirms the agent still records ip for the attachment.
func checkAgent(conf *NetConf, key agentapi.AttachmentKey, ip net.IP) error {
	ctx, cancel := context.WithTimeout(context.Background(), conf.Timeout())
	defer cancel()
	rec, err := newAgent(conf).Check(ctx, agentapi.CheckRequest{AttachmentKey: key})
	if agentapi.IsNotFound(err) {
		return types.NewError(types.ErrInternal, fmt.Sprintf("check: nicpool agent holds no ip for %s/%s", key.ContainerID, key.IfName), "")
	}
	if err != nil {
		return agentError("check agent record", err)
	}
	if !net.ParseIP(rec.IP).Equal(ip) {
		return types.NewError(types.ErrInternal, fmt.Sprintf("check: nicpool agent records ip %s, prevResult has %s", rec.IP, ip), "")
	}
	return nil
}

// checkHost verifies the host veth and the /32 route to the pod.
func checkHost(hostName string, want expected) error {
	veth, err := lookupHostVeth(hostName)
	if err != nil {
		return err
	}
	if veth == nil {
		return fmt.Errorf("host veth %s does not exist", hostName)
	}
	if got := veth.Attrs().HardwareAddr.String(); got != want.hostMAC {
		return fmt.Errorf("host veth %s has mac %s, want %s", hostName, got, want.hostMAC)
	}
	if veth.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("host veth %s is down", hostName)
	}
	ok, err := findHostRoute(want.ip, veth)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no route %s/32 scope link dev %s", want.ip, hostName)
	}
	return nil
}
