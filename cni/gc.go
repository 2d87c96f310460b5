package cni

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// CmdGC implements CNI GC: the agent releases every attachment not in
// cni.dev/valid-attachments, and the host veth of each released attachment
// is removed.
//
// Host veths are removed only for attachments the agent reports released:
// a veth name is a one-way hash, and sweeping every "np…" veth missing from
// the valid list could tear down an ADD still in flight. Veths whose
// allocation vanished some other way are left to the agent's own GC, which
// derives the same names.
func CmdGC(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	log, closeLog := newLogger(conf, "GC", args)
	defer closeLog()
	err = gc(conf, log)
	logOutcome(log, err)
	return err
}

func gc(conf *NetConf, log *slog.Logger) error {
	// Without the list every attachment would look stale; refuse rather than
	// release every pod's IP on the node.
	if !conf.hasValidAttachments {
		return types.NewError(types.ErrInvalidNetworkConfig, "gc: cni.dev/valid-attachments is missing", "")
	}
	// The runtime sends one GC per network; the agent releases only this
	// network's attachments that are not listed.
	req := agentapi.GCRequest{Network: conf.Name, ValidAttachments: make([]agentapi.AttachmentKey, 0, len(conf.ValidAttachments))}
	for _, a := range conf.ValidAttachments {
		req.ValidAttachments = append(req.ValidAttachments, agentapi.AttachmentKey{Network: conf.Name, ContainerID: a.ContainerID, IfName: a.IfName})
	}
	ctx, cancel := context.WithTimeout(context.Background(), conf.Timeout())
	defer cancel()
	resp, err := newAgent(conf).GC(ctx, req)
	if err != nil {
		return agentError("garbage-collect pod ips", err)
	}
	var errs []error
	for _, key := range resp.Released {
		log.Info("Released stale attachment", "containerID", key.ContainerID, "ifName", key.IfName)
		if err := deleteHostVeth(hostVethName(key)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("gc: remove host veths: %v", err), "")
	}
	return nil
}
