package cni

import (
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// podArgs are the Kubernetes keys of CNI_ARGS that nicpool records.
type podArgs struct {
	Namespace string
	Name      string
	UID       string
}

// parsePodArgs reads K8S_POD_NAMESPACE, K8S_POD_NAME and K8S_POD_UID from
// CNI_ARGS ("K1=V1;K2=V2"). Other keys are ignored whether or not
// IgnoreUnknown is set: runtimes add keys of their own
// (K8S_POD_INFRA_CONTAINER_ID) and refusing them would break pods for no gain.
func parsePodArgs(cniArgs string) (podArgs, error) {
	var pa podArgs
	if cniArgs == "" {
		return pa, nil
	}
	for _, pair := range strings.Split(cniArgs, ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return pa, types.NewError(types.ErrInvalidEnvironmentVariables,
				fmt.Sprintf("parse CNI_ARGS: %q is not KEY=VALUE", pair), "")
		}
		switch k {
		case "K8S_POD_NAMESPACE":
			pa.Namespace = v
		case "K8S_POD_NAME":
			pa.Name = v
		case "K8S_POD_UID":
			pa.UID = v
		}
	}
	return pa, nil
}

// attachmentKey is the agent's key for this invocation: the network name
// keeps another network's CNI GC (Multus runs one per network) from
// matching nicpool's attachments.
func attachmentKey(conf *NetConf, args *skel.CmdArgs) agentapi.AttachmentKey {
	return agentapi.AttachmentKey{Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName}
}
