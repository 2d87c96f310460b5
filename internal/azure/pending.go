package azure

import (
	"strings"
	"sync"
)

// pendingOps remembers NIC PUTs whose LRO wait timed out, by lower-case NIC ID, as azcore
// resume tokens. It lives in memory only: after an operator restart a still-running PUT
// shows up as provisioningState Updating (NICProvisioning: ProvisioningInProgress) and
// 409 AnotherOperationInProgress instead, which callers must honour.
type pendingOps struct {
	mu     sync.Mutex
	tokens map[string]string
}

func (p *pendingOps) get(nicID string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tok, ok := p.tokens[strings.ToLower(nicID)]
	return tok, ok
}

func (p *pendingOps) put(nicID, token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tokens == nil {
		p.tokens = map[string]string{}
	}
	p.tokens[strings.ToLower(nicID)] = token
}

// done forgets nicID's operation, but only if it is still the one identified by token,
// so a concurrent newer PUT's token is not dropped.
func (p *pendingOps) done(nicID, token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := strings.ToLower(nicID)
	if p.tokens[key] == token {
		delete(p.tokens, key)
	}
}

// count reports how many operations are pending (for tests and metrics).
func (p *pendingOps) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.tokens)
}
