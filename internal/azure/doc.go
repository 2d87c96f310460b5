// Package azure is the operator's only door to Azure Resource Manager: a NIC client
// (read, If-Match read-modify-write PUT with a bounded, resumable LRO wait, NIC lookup by
// VM), subnet and VNet reads, ARM error classification, resource ID parsing, client-side
// read/write rate limiting, and credentials through azidentity. Its ARM endpoint can be
// pointed at internal/armsim for tests and the demo.
package azure
