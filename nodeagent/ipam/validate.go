package ipam

import (
	"fmt"
	"strings"

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

// ValidateAttachment checks an attachment; see ValidateKey.
func ValidateAttachment(a agentapi.Attachment) error {
	var problems []string
	if err := ValidateKey(a.AttachmentKey); err != nil {
		problems = append(problems, err.Error())
	}
	if len(a.PodNamespace) > maxPodField || len(a.PodName) > maxPodField {
		problems = append(problems, fmt.Sprintf("podNamespace and podName must be at most %d characters", maxPodField))
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
