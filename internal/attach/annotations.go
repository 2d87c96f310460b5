// Package attach turns a pod's network.nicpool.io attachment annotations into
// a NodeIPPool attachment request and checks requests against the rules Azure
// applies that can be checked without reading the referenced resources. It is
// pure: no I/O, no SDK.
package attach

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// The shapes the CRD's patterns accept (api/v1alpha1/attachment_types.go),
// case-insensitive in ARM's keywords as ARM is.
var (
	asgID  = regexp.MustCompile(`^/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/microsoft\.network/applicationsecuritygroups/([^/]+)$`)
	poolID = regexp.MustCompile(`^/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/microsoft\.network/loadbalancers/([^/]+)/backendaddresspools/([^/]+)$`)
	pipID  = regexp.MustCompile(`^/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/microsoft\.network/publicipaddresses/([^/]+)$`)
)

// maxIDLength is the CRD's limit on one resource ID.
const maxIDLength = 1024

// Problem is one annotation the pod got wrong.
type Problem struct {
	// Annotation is the annotation's key.
	Annotation string
	// Message says what is wrong, in words.
	Message string
}

// Error returns "annotation: message".
func (p Problem) Error() string { return p.Annotation + ": " + p.Message }

// FromAnnotations returns the attachment request of a pod's annotations for
// ip (its IP and Pod are left to the caller) and the problems found. A
// problem drops the annotation it is in (the others still apply), so a typo
// never attaches something half-parsed.
func FromAnnotations(ann map[string]string) (nicpoolv1.IPAttachment, []Problem) {
	var a nicpoolv1.IPAttachment
	var problems []Problem
	if v, ok := ann[nicpoolv1.AnnotationApplicationSecurityGroups]; ok {
		ids, err := parseList(v, asgID, "an application security group", nicpoolv1.MaxApplicationSecurityGroups)
		if err != nil {
			problems = append(problems, Problem{nicpoolv1.AnnotationApplicationSecurityGroups, err.Error()})
		}
		for _, id := range ids {
			a.ApplicationSecurityGroups = append(a.ApplicationSecurityGroups, nicpoolv1.ApplicationSecurityGroupID(id))
		}
	}
	if v, ok := ann[nicpoolv1.AnnotationLoadBalancerBackendPools]; ok {
		ids, err := parseList(v, poolID, "a load balancer backend address pool", nicpoolv1.MaxBackendPools)
		if err != nil {
			problems = append(problems, Problem{nicpoolv1.AnnotationLoadBalancerBackendPools, err.Error()})
		}
		for _, id := range ids {
			a.LoadBalancerBackendAddressPools = append(a.LoadBalancerBackendAddressPools, nicpoolv1.BackendPoolID(id))
		}
	}
	if v, ok := ann[nicpoolv1.AnnotationPublicIP]; ok {
		v = strings.TrimSpace(v)
		switch {
		case v == "":
		case strings.EqualFold(v, nicpoolv1.PublicIPCreate):
			a.PublicIPAddress = nicpoolv1.PublicIPCreate
		case len(v) > maxIDLength || !pipID.MatchString(strings.ToLower(v)):
			problems = append(problems, Problem{nicpoolv1.AnnotationPublicIP, fmt.Sprintf(
				"%q is neither %q nor a public IP address ID such as /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Network/publicIPAddresses/<name>",
				v, nicpoolv1.PublicIPCreate)})
		default:
			a.PublicIPAddress = nicpoolv1.PublicIPRequest(v)
		}
	}
	return a, problems
}

// parseList splits a comma-separated list of IDs that must match shape. On
// any bad entry it returns no IDs at all and the error.
func parseList(v string, shape *regexp.Regexp, what string, maxItems int) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		id := strings.TrimSpace(f)
		if id == "" {
			continue
		}
		if len(id) > maxIDLength || !shape.MatchString(strings.ToLower(id)) {
			return nil, fmt.Errorf("%q is not the ARM resource ID of %s", id, what)
		}
		if !slices.ContainsFunc(out, func(x string) bool { return strings.EqualFold(x, id) }) {
			out = append(out, id)
		}
	}
	if len(out) > maxItems {
		return nil, fmt.Errorf("%d IDs: at most %d are allowed", len(out), maxItems)
	}
	return out, nil
}

// Same reports whether two requests ask for the same attachments (ARM IDs
// compared case-insensitively, lists as sets).
func Same(a, b nicpoolv1.IPAttachment) bool {
	return sameSet(asStrings(a.ApplicationSecurityGroups), asStrings(b.ApplicationSecurityGroups)) &&
		sameSet(asStrings(a.LoadBalancerBackendAddressPools), asStrings(b.LoadBalancerBackendAddressPools)) &&
		strings.EqualFold(string(a.PublicIPAddress), string(b.PublicIPAddress))
}

// sameSet compares two ID lists as case-insensitive sets.
func sameSet(a, b []string) bool {
	norm := func(xs []string) []string {
		out := make([]string, 0, len(xs))
		for _, x := range xs {
			out = append(out, strings.ToLower(strings.Trim(x, "/")))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

// asStrings converts a list of string-typed IDs.
func asStrings[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

// Strings converts a list of string-typed IDs to plain strings.
func Strings[T ~string](xs []T) []string { return asStrings(xs) }

// SameIDs compares two ID lists as case-insensitive sets.
func SameIDs(a, b []string) bool { return sameSet(a, b) }
