package ipam

import (
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/utils"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// Limits on request fields, generous but bounded so the state file stays sane.
const (
	maxContainerID = 256
	maxIfName      = 15 // Linux IFNAMSIZ less the NUL
	maxPodField    = 253
	maxNetNS       = 4096
)

// ValidateKey checks an attachment key; the error is an *agentapi.Error
// with CodeInvalidFields.
func ValidateKey(k agentapi.AttachmentKey) error {
	var problems []string
	switch {
	case k.ContainerID == "":
		problems = append(problems, "containerID is required")
	case len(k.ContainerID) > maxContainerID:
		problems = append(problems, fmt.Sprintf("containerID is longer than %d characters", maxContainerID))
	case strings.ContainsAny(k.ContainerID, "/\x00 \t\n"):
		problems = append(problems, "containerID must not contain '/', NUL or whitespace")
	}
	if p := networkProblem(k.Network); p != "" {
		problems = append(problems, p)
	}
	switch {
	case k.IfName == "":
		problems = append(problems, "ifName is required")
	case len(k.IfName) > maxIfName:
		problems = append(problems, fmt.Sprintf("ifName %q is longer than %d characters", k.IfName, maxIfName))
	case strings.ContainsAny(k.IfName, "/\x00 \t\n:"):
		problems = append(problems, fmt.Sprintf("ifName %q must not contain '/', ':', NUL or whitespace", k.IfName))
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
