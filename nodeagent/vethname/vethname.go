// Package vethname derives the host-side veth name of a pod attachment. The
// CNI plugin names the veth with it and the agent finds the veth with it, so
// both must import this one function.
package vethname

import (
	"crypto/sha256"
	"encoding/hex"
)

// Prefix starts every host veth nicpool creates.
const Prefix = "np"

// VethName returns "np" followed by the first 11 hex characters of
// sha256(containerID + "/" + ifName): 13 characters, within Linux's 15-byte
// interface name limit, and stable across restarts.
func VethName(containerID, ifName string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + ifName))
	return Prefix + hex.EncodeToString(sum[:])[:11]
}
