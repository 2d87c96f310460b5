package cni

import (
	"context"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
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

// del removes the veth before releasing the IP, so the IP is never handed
// to another pod while this one's route still points at it.
//
// Everything that is already gone counts as done, because kubelet retries a
// failed DEL forever and a pod whose DEL cannot succeed is never cleaned up:
//   - the netns is gone: the kernel destroyed the veth pair with it, so
//     nicpool never even opens CNI_NETNS here;
//   - the host veth is gone: an earlier DEL or a rolled-back ADD removed it
//     (the kernel removed its /32 route with it);
//   - the agent has no record: an earlier DEL or the agent's GC released it.
//
// An unreachable agent is an error: the IP would leak if DEL claimed success.
func del(args *skel.CmdArgs, conf *NetConf, log *slog.Logger) error {
	key := attachmentKey(conf, args)
	hostName := hostVethName(key)
	if err := deleteHostVeth(hostName); err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), conf.Timeout())
	defer cancel()
	resp, err := newAgent(conf).Release(ctx, agentapi.ReleaseRequest{AttachmentKey: key})
	if err != nil && !agentapi.IsNotFound(err) {
		return agentError("release pod ip", err)
	}
	if resp != nil && resp.IP != "" {
		log.Info("Released IP", "ip", resp.IP)
	}
	return nil
}
