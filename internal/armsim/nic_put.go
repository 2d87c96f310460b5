package armsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

const maxBodyBytes = 4 << 20

// putNIC creates or updates a NIC as a long-running operation: addresses are allocated at
// once, the NIC stays Updating until the operation completes after PutLatency.
func (s *Server) putNIC(w http.ResponseWriter, r *http.Request, p params) *armError {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		return errorf(http.StatusBadRequest, CodeInvalidRequestContent, "read request body: %v", err)
	}
	var body armnetwork.Interface
	if err := json.Unmarshal(raw, &body); err != nil {
		return errorf(http.StatusBadRequest, CodeInvalidRequestContent, "The request content was invalid and could not be deserialized: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if aerr := s.checkRGLocked(p.rg); aerr != nil {
		return aerr
	}
	k := key(p.rg, p.name)
	existing := s.nics[k]
	if aerr := checkPreconditions(r, existing); aerr != nil {
		return aerr
	}
	if existing != nil && existing.op != nil {
		return errorf(http.StatusConflict, CodeAnotherOperationInProgress,
			"Operation PutNetworkInterface on resource %s cannot be performed because another operation (PutNetworkInterface %s) is in progress.", existing.id, existing.op.id)
	}
	n := existing
	if n == nil {
		n = s.newNIC(s.rgs[strings.ToLower(p.rg)], p.name, s.location)
		if body.Location != nil && *body.Location != "" {
			n.location = *body.Location
		}
	}
	var specs []*armnetwork.InterfaceIPConfiguration
	if body.Properties != nil {
		specs = body.Properties.IPConfigurations
	}
	nsgID, aerr := s.parseNICNSG(n, body.Properties)
	if aerr != nil {
		return aerr
	}
	plan, aerr := s.planConfigs(n, existing != nil, specs)
	if aerr != nil {
		return aerr
	}
	s.commitLocked(n, plan)
	n.nsg = nsgID
	n.tags = body.Tags
	s.nics[k] = n
	op := s.newOperationLocked(n)
	s.stats.putsByNIC[n.id]++
	s.bumpLocked()
	w.Header().Set("Azure-AsyncOperation", s.asyncURL(r, op))
	setPollHint(w, op)
	w.Header().Set("ETag", n.etag)
	status := http.StatusOK
	if existing == nil {
		status = http.StatusCreated
	}
	writeJSON(w, status, renderNIC(n))
	return nil
}

// commitLocked swaps n's configurations for plan, moving the address ledger. Requires s.mu.
func (s *Server) commitLocked(n *nic, plan *configPlan) {
	s.detachLocked(n)
	for _, c := range n.configs {
		releaseAddr(n, c)
	}
	for _, c := range plan.configs {
		c.subnet.vnet.used[c.addr] = n.configID(c.name)
	}
	n.configs = plan.configs
	n.vnet = plan.vnet
	s.attachLocked(n)
	n.state = stateUpdating
	n.etag = newEtag()
}
