package controllers

import "github.com/nicpool/nicpool/internal/nicsync"

// The plan of one NIC write (which nicpool IP configurations to remove and
// how many to add, what status.ips offers) and the If-Match write loop live
// in internal/nicsync, shared with the standalone agent that keeps its own
// VM's NIC. New per-IP features belong in that plan.

// deref returns *p, or "" for nil.
func deref(p *string) string { return nicsync.Deref(p) }
