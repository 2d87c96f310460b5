package snat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/coreos/go-iptables/iptables"
)

// IPTables is the subset of go-iptables the Manager uses. Implementations
// run one iptables command per call; none of them is atomic with another.
type IPTables interface {
	// List returns the chain as `iptables -S` prints it.
	List(table, chain string) ([]string, error)
	// ChainExists reports whether the chain exists.
	ChainExists(table, chain string) (bool, error)
	// ClearChain creates the chain, or flushes it when it exists.
	ClearChain(table, chain string) error
	// ClearAndDeleteChain removes the chain; a missing chain is no error.
	ClearAndDeleteChain(table, chain string) error
	// Append adds a rule at the end of the chain.
	Append(table, chain string, rulespec ...string) error
	// Insert adds a rule at a 1-based position.
	Insert(table, chain string, pos int, rulespec ...string) error
	// DeleteIfExists deletes the first rule matching rulespec, if any.
	DeleteIfExists(table, chain string, rulespec ...string) error
	// HasRandomFully reports whether SNAT supports --random-fully.
	HasRandomFully() bool
}

var _ IPTables = (*iptables.IPTables)(nil)

// iptablesWaitSeconds bounds how long one command waits for the xtables lock.
const iptablesWaitSeconds = 10

// Manager keeps the node's forwarding and SNAT rules as configured. Its
// methods are safe for concurrent use; they serialise on a mutex.
type Manager struct {
	mu         sync.Mutex
	ipt        IPTables
	forwardSys string
	rules      rules
}

// New validates cfg and returns a Manager; it changes nothing on the node.
func New(cfg Config) (*Manager, error) {
	ipt := cfg.IPTables
	if ipt == nil {
		ipt4, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Timeout(iptablesWaitSeconds))
		if err != nil {
			return nil, fmt.Errorf("create iptables client: %w", err)
		}
		ipt = ipt4
	}
	r, err := cfg.validate(ipt.HasRandomFully())
	if err != nil {
		return nil, err
	}
	forward := cfg.IPForwardPath
	if forward == "" {
		forward = DefaultIPForwardPath
	}
	return &Manager{ipt: ipt, forwardSys: forward, rules: r}, nil
}

// ChainName returns the nat chain the Manager owns.
func (m *Manager) ChainName() string { return m.rules.chain }

// Sync enables IPv4 forwarding and makes the SNAT chain and its single jump
// from nat POSTROUTING exactly as configured. It is idempotent; when nothing
// changed it runs five read-only iptables commands.
func (m *Manager) Sync(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := enableForwarding(m.forwardSys); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sync snat: %w", err)
	}
	if err := m.converge(ctx); err != nil {
		return fmt.Errorf("sync snat chain %s: %w", m.rules.chain, err)
	}
	return nil
}

// Cleanup removes every jump to the chain (and to its staging chain) and
// both chains. It is idempotent. IPv4 forwarding is left on: other software
// on the node may rely on it. A jump to the chain that nicpool did not add
// makes the chain's deletion fail with an error naming it.
func (m *Manager) Cleanup() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, c := range []string{m.rules.chain, m.rules.staging} {
		if err := m.deleteJumps(c, 0); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := m.ipt.ClearAndDeleteChain(natTable, c); err != nil {
			errs = append(errs, fmt.Errorf("delete chain %s: %w", c, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up snat: %w", err)
	}
	return nil
}

// enableForwarding writes 1 to the ip_forward sysctl unless it is already 1.
func enableForwarding(path string) error {
	cur, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if strings.TrimSpace(string(cur)) == "1" {
		return nil
	}
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable ip forwarding in %s: %w", path, err)
	}
	return nil
}
