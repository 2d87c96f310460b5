package cni

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// cleanupTimeout bounds the agent calls made after the verb's own deadline
// may have passed (releasing the IP of a failed ADD).
const cleanupTimeout = 10 * time.Second

// newAgent returns a client for the agent the configuration names.
func newAgent(conf *NetConf) *agentapi.Client {
	return agentapi.NewClient(conf.AgentSocket)
}

// agentError turns an agent failure into a CNI error: the agent's own code
// passes through (11 means the runtime should retry), an unreachable or
// silent agent becomes "try again later" because it is expected to come
// back (it is a DaemonSet).
func agentError(doing string, err error) error {
	var apiErr *agentapi.Error
	switch {
	case errors.As(err, &apiErr):
		code := apiErr.Code
		if code == 0 || code == agentapi.CodeNotFound {
			code = types.ErrInternal
		}
		return types.NewError(code, fmt.Sprintf("%s: %s", doing, apiErr.Message), "")
	case errors.Is(err, context.DeadlineExceeded):
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("%s: nicpool agent did not answer in time: %v", doing, err), "")
	default:
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("%s: nicpool agent unreachable: %v", doing, err), "")
	}
}

// releaseIP returns the attachment's IP with a fresh bounded context, for
// use in rollbacks where the verb's context may already be done.
func releaseIP(agent *agentapi.Client, key agentapi.AttachmentKey) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if _, err := agent.Release(ctx, agentapi.ReleaseRequest{AttachmentKey: key}); err != nil {
		return fmt.Errorf("release ip of %s/%s: %w", key.ContainerID, key.IfName, err)
	}
	return nil
}
