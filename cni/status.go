package cni

import (
	"context"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// statusTimeout bounds STATUS: the runtime polls it and must not hang.
const statusTimeout = 10 * time.Second

// CmdStatus implements CNI STATUS: an error (code 50, plugin not available)
// when the agent is unreachable or cannot hand out IPs, so the runtime
// reports the node's network as not ready.
func CmdStatus(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	log, closeLog := newLogger(conf, "STATUS", args)
	defer closeLog()
	err = status(conf)
	logOutcome(log, err)
	return err
}

func status(conf *NetConf) error {
	timeout := min(conf.Timeout(), statusTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := newAgent(conf).Status(ctx)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("query nicpool agent status: %v", err), "")
	}
	if !st.Ready {
		return types.NewError(types.ErrPluginNotAvailable,
			fmt.Sprintf("nicpool agent not ready: %s", st.Reason),
			fmt.Sprintf("capacity %d, allocated %d, free %d", st.Capacity, st.Allocated, st.Free))
	}
	return nil
}
