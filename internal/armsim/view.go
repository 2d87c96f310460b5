package armsim

import (
	"context"
	"fmt"
	"sort"
)

// IPConfigState is one IP configuration in a Snapshot.
type IPConfigState struct {
	Name, IP          string
	Primary           bool
	ProvisioningState string
	// ASGs are the lower-case IDs of the application security groups it is a member of.
	ASGs []string
	// PublicIPID is the lower-case ID of its public IP address, "" for none.
	PublicIPID string
}

// NICState is one NIC in a Snapshot.
type NICState struct {
	ID, Name, ResourceGroup, VMID, SubnetID, VNetID, Etag, ProvisioningState string
	// NSGID is the lower-case ID of the NIC's network security group, "" for none.
	NSGID     string
	IPConfigs []IPConfigState
}

// Snapshot is a consistent read-only copy of every NIC, taken at Version.
type Snapshot struct {
	Version uint64
	NICs    []NICState
	// Network is the state of everything else the fabric enforces.
	Network NetworkState
}

// Stats counts requests per operation and HTTP status, accepted PUTs per NIC ID, and
// PUT operations that ended Failed (FailNextOperations).
type Stats struct {
	Calls            map[Op]map[int]int
	PutsByNIC        map[string]int
	OperationsFailed int
}

// statsState accumulates Stats. Guarded by Server.mu.
type statsState struct {
	calls     map[Op]map[int]int
	putsByNIC map[string]int
	opsFailed int
}

func newStatsState() statsState {
	return statsState{calls: map[Op]map[int]int{}, putsByNIC: map[string]int{}}
}

func (st *statsState) record(op Op, status int) {
	m := st.calls[op]
	if m == nil {
		m = map[int]int{}
		st.calls[op] = m
	}
	m[status]++
}

// Snapshot returns every NIC (sorted by ID) with its IP configurations.
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Version: s.version, NICs: make([]NICState, 0, len(s.nics))}
	for _, n := range s.nics {
		st := NICState{
			ID: n.id, Name: n.name, ResourceGroup: n.rg, VMID: n.vmID,
			Etag: n.etag, ProvisioningState: n.state, NSGID: lower(n.nsg),
		}
		if n.vnet != nil {
			st.VNetID = n.vnet.id
		}
		if p := n.primaryConfig(); p != nil {
			st.SubnetID = p.subnet.id
		}
		for _, c := range n.configs {
			st.IPConfigs = append(st.IPConfigs, IPConfigState{
				Name: c.name, IP: c.addr.String(), Primary: c.primary, ProvisioningState: c.state,
				ASGs: sortedLower(c.asgs), PublicIPID: lower(c.pip),
			})
		}
		snap.NICs = append(snap.NICs, st)
	}
	sort.Slice(snap.NICs, func(i, j int) bool { return snap.NICs[i].ID < snap.NICs[j].ID })
	snap.Network = s.snapshotNetworkLocked()
	return snap
}

// WaitForChange blocks until the state version exceeds after (or ctx ends) and returns it.
func (s *Server) WaitForChange(ctx context.Context, after uint64) (uint64, error) {
	for {
		s.mu.Lock()
		v, ch := s.version, s.changed
		s.mu.Unlock()
		if v > after {
			return v, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return v, fmt.Errorf("wait for a change after version %d: %w", after, ctx.Err())
		}
	}
}

// Stats returns a copy of the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Calls: map[Op]map[int]int{}, PutsByNIC: map[string]int{}, OperationsFailed: s.stats.opsFailed}
	for op, m := range s.stats.calls {
		c := map[int]int{}
		for k, v := range m {
			c[k] = v
		}
		out.Calls[op] = c
	}
	for k, v := range s.stats.putsByNIC {
		out.PutsByNIC[k] = v
	}
	return out
}
