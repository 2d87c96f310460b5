package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/nicsync"
)

// attachment is what one IP configuration carries besides its address.
type attachment = nicsync.Attachment

// attachInput is what the attachment part of a plan decides from.
type attachInput struct {
	// Configs are all IP configurations on the NIC.
	Configs []nicsync.Config
	// Removed are the names of configurations the plan removes.
	Removed []string
	// Published maps each IP of status.ips to its configuration name.
	Published map[string]string
	// Wants maps an IP to what spec.attachments asks for it, "create"
	// already resolved to the public IP's ID. An IP without an entry (or
	// with an empty one) asks for nothing.
	Wants map[string]attachment
	// Hold are IPs whose configuration keeps what it carries this pass (a
	// request ARM refused, waiting for its retry).
	Hold map[string]bool
	// NICASGs are the application security groups of the NIC's primary
	// configuration. Azure requires every IP configuration of a NIC to be in
	// the same ASGs, so each nicpool configuration carries these, whatever
	// its pod asks (a request for others is refused before the plan).
	NICASGs []string
}

// attachChanges returns, by configuration name, the new attachments of the
// nicpool configurations whose attachments differ from what is wanted. A
// configuration gets its IP's request (backend pools, public IP) only when
// status.ips published it under that name (the agent asked for the
// configuration it saw); any other nicpool configuration is brought to carry
// none. Every one carries the NIC's ASGs (NICASGs). The primary, foreign
// configurations and the ones the plan removes are never touched.
func attachChanges(in attachInput) map[string]attachment {
	out := map[string]attachment{}
	for _, c := range in.Configs {
		if !c.Owned() || c.IP == "" || slices.Contains(in.Removed, c.Name) || in.Hold[c.IP] {
			continue
		}
		var want attachment
		if in.Published[c.IP] == c.Name {
			want = in.Wants[c.IP]
		}
		want.ASGs = in.NICASGs
		if !want.Same(c.Att) {
			out[c.Name] = want
		}
	}
	return out
}

// createdPublicIPName is the name of the public IP the operator creates for
// the pod uid holding ip on pool: the same on every pass and after any crash
// (so it is created once and found again), different for the next pod on the
// IP (so one pod's public address never passes to another).
func createdPublicIPName(pool, ip, uid string) string {
	sum := sha256.Sum256([]byte(pool + "/" + ip + "/" + uid))
	return nicpoolv1.IPConfigurationPrefix + "pip-" + hex.EncodeToString(sum[:10])
}

// createdPublicIPID is the ARM ID of that public IP in the NIC's resource
// group (nicID's subscription and group).
func createdPublicIPID(nicID, pool, ip, uid string) string {
	segs := strings.Split(strings.Trim(nicID, "/"), "/")
	if len(segs) < 4 {
		return ""
	}
	return "/subscriptions/" + segs[1] + "/resourceGroups/" + segs[3] +
		"/providers/Microsoft.Network/publicIPAddresses/" + createdPublicIPName(pool, ip, uid)
}

// isCreatedPublicIP reports whether id names a public IP the operator
// created (by name: nicpool-pip-...).
func isCreatedPublicIP(id string) bool {
	i := strings.LastIndex(id, "/")
	return i >= 0 && strings.HasPrefix(id[i+1:], nicpoolv1.IPConfigurationPrefix+"pip-")
}
