package cni

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/vethname"
)

// CmdDel implements CNI DEL: it removes the pod's datapath and returns its
// IP. It is idempotent.
func CmdDel(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	log, closeLog := newLogger(conf, "DEL", args)
	defer closeLog()
	err = del(args, conf, log)
	logOutcome(log, err)
	return err
}

// del takes the pod off its veth and hands the veth's delete and the IP's
// release to the agent, which frees the IP only once the veth is gone, so
// the IP is never handed to another pod while this one's route still
// points at it. The kernel's veth delete waits for RCU grace periods (about
// 20 ms, most of a DEL), which the runtime then does not wait for.
//
// Everything that is already gone counts as done, because kubelet retries a
// failed DEL forever and a pod whose DEL cannot succeed is never cleaned up:
//   - the netns is gone: the kernel destroyed the veth pair with it;
//   - the host veth is gone: an earlier DEL or a rolled-back ADD removed it
//     (the kernel removed its /32 route with it);
//   - the agent has no record: an earlier DEL or the agent's GC released it.
//
// An unreachable agent is an error: the IP would leak if DEL claimed success.
func del(args *skel.CmdArgs, conf *NetConf, log *slog.Logger) error {
	key := attachmentKey(conf, args)
	hostName := hostVethName(key)
	host, err := lookupHostVeth(hostName)
	if errors.Is(err, errNotVeth) {
		host, err = nil, nil
	}
	if err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	deferred := host != nil
	if host != nil {
		if err := retirePodEnd(args.Netns, args.IfName, host, retiredName(key)); err != nil {
			log.Info("Deleted the veth itself because the pod end could not be retired", "err", err.Error())
			deferred = false
		}
	}
	if host != nil && !deferred {
		if err := deleteHostVeth(hostName); err != nil {
			return types.NewError(types.ErrInternal, err.Error(), "")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), conf.Timeout())
	defer cancel()
	resp, err := newAgent(conf).Release(ctx, agentapi.ReleaseRequest{AttachmentKey: key, DeleteVeth: deferred})
	if err != nil && !agentapi.IsNotFound(err) {
		return agentError("release pod ip", err)
	}
	if deferred && (resp == nil || !resp.VethDeleting) {
		// An agent older than DeleteVeth released the IP already. The agent
		// installs its own plugin, so they differ only during an upgrade;
		// the pod end is down, so the IP's next pod is not disturbed.
		if err := deleteHostVeth(hostName); err != nil {
			return types.NewError(types.ErrInternal, err.Error(), "")
		}
	}
	if resp != nil && resp.IP != "" {
		log.Info("Released IP", "ip", resp.IP, "vethDeleting", resp.VethDeleting)
	}
	return nil
}

// retiredName is the name the pod end of key takes when retired: unique
// per attachment (the host veth's hash) and within the 15-byte limit.
func retiredName(key agentapi.AttachmentKey) string {
	return "nd" + hostVethName(key)[len(vethname.Prefix):]
}

// retirePodEnd takes the pod end of host out of use at once: down (the pod
// can no longer send from its IP) and renamed, so the runtime may ADD the
// same interface name to the namespace again (CNI allows ADD after DEL)
// before the agent has deleted the pair. Both are cheap, unlike the delete.
// A missing namespace or pod end is done already; a link of that name
// whose peer is not host is not nicpool's and is left alone.
func retirePodEnd(netnsPath, ifName string, host *netlink.Veth, retired string) error {
	if netnsPath == "" {
		return nil
	}
	netns, err := ns.GetNS(netnsPath)
	if err != nil {
		var gone ns.NSPathNotExistErr
		if errors.As(err, &gone) {
			return nil
		}
		return fmt.Errorf("open netns %q: %w", netnsPath, err)
	}
	// The handle is only read; closing it cannot lose anything.
	defer func() { _ = netns.Close() }()
	return netns.Do(func(ns.NetNS) error {
		link, err := netlinksafe.LinkByName(ifName)
		if isLinkNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("look up pod interface %s: %w", ifName, err)
		}
		if _, ok := link.(*netlink.Veth); !ok || link.Attrs().ParentIndex != host.Attrs().Index {
			return nil
		}
		if err := netlink.LinkSetDown(link); err != nil {
			return fmt.Errorf("set pod interface %s down: %w", ifName, err)
		}
		if err := netlink.LinkSetName(link, retired); err != nil {
			return fmt.Errorf("rename pod interface %s to %s: %w", ifName, retired, err)
		}
		return nil
	})
}
