package ipam

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/containernetworking/cni/pkg/utils"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// Limits on request fields, generous but bounded so the state file stays sane.
const (
	maxContainerID = 256
	maxNetwork     = 253
	maxPodField    = 253
	maxNetNS       = 4096
)

// ValidateKey checks an attachment key with libcni's rules (the runtime's
// library refuses the same values before calling a plugin): a container ID
// of letters, digits, '_', '.' and '-' starting with a letter or digit
// (bounded to maxContainerID); an interface name of 1 to 15 bytes, not "."
// or "..", without '/', ':' or whitespace, and (stricter than libcni)
// without control characters. The error is an *agentapi.Error with
// CodeInvalidFields; it quotes at most a short excerpt of a bad value.
func ValidateKey(k agentapi.AttachmentKey) error {
	var problems []string
	if p := networkProblem(k.Network); p != "" {
		problems = append(problems, p)
	}
	switch {
	case k.ContainerID == "":
		problems = append(problems, "containerID is required")
	case len(k.ContainerID) > maxContainerID:
		problems = append(problems, fmt.Sprintf("containerID %s is longer than %d characters", quoteShort(k.ContainerID), maxContainerID))
	case utils.ValidateContainerID(k.ContainerID) != nil:
		problems = append(problems, fmt.Sprintf("containerID %s may hold only letters, digits, '_', '.' and '-', and must start with a letter or digit", quoteShort(k.ContainerID)))
	}
	if k.IfName == "" {
		problems = append(problems, "ifName is required")
	} else if err := utils.ValidateInterfaceName(k.IfName); err != nil {
		problems = append(problems, fmt.Sprintf("ifName %s: %s", quoteShort(k.IfName), err.Msg))
	} else if strings.IndexFunc(k.IfName, unicode.IsControl) >= 0 {
		problems = append(problems, fmt.Sprintf("ifName %s contains control characters", quoteShort(k.IfName)))
	}
	return invalid(problems)
}

// ValidateNetwork checks a CNI network name as libcni does; empty stands for
// agentapi.DefaultNetwork and is valid. The error is an *agentapi.Error
// with CodeInvalidFields.
func ValidateNetwork(name string) error {
	if p := networkProblem(name); p != "" {
		return invalid([]string{p})
	}
	return nil
}

func networkProblem(name string) string {
	if name == "" {
		return ""
	}
	if len(name) > maxNetwork {
		return fmt.Sprintf("network %s is longer than %d characters", quoteShort(name), maxNetwork)
	}
	if err := utils.ValidateNetworkName(name); err != nil {
		return fmt.Sprintf("network %s: %s", quoteShort(name), err.Msg)
	}
	return ""
}

// ValidateAttachment checks an attachment; see ValidateKey.
func ValidateAttachment(a agentapi.Attachment) error {
	var problems []string
	if err := ValidateKey(a.AttachmentKey); err != nil {
		problems = append(problems, err.Error())
	}
	if len(a.PodNamespace) > maxPodField || len(a.PodName) > maxPodField || len(a.PodUID) > maxPodField {
		problems = append(problems, fmt.Sprintf("podNamespace, podName and podUID must be at most %d characters", maxPodField))
	}
	if (a.PodNamespace == "") != (a.PodName == "") {
		problems = append(problems, "podNamespace and podName must be given together")
	}
	if len(a.NetNS) > maxNetNS {
		problems = append(problems, fmt.Sprintf("netns is longer than %d characters", maxNetNS))
	}
	return invalid(problems)
}

func invalid(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return &agentapi.Error{Code: agentapi.CodeInvalidFields, Message: "invalid request: " + strings.Join(problems, "; ")}
}

// shortLen is how much of a rejected value an error message quotes: a
// request may carry up to 1 MiB in one field, and error messages end up in
// logs and in the runtime's events.
const shortLen = 64

// quoteShort quotes s, cut to shortLen bytes with its full length noted.
func quoteShort(s string) string {
	if len(s) <= shortLen {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:shortLen], len(s))
}
