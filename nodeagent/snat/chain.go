package snat

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// converge makes the live chain hold exactly the wanted rules and leaves one
// jump to it, without a packet ever traversing a partly written chain (see
// the package comment).
func (m *Manager) converge(ctx context.Context) error {
	live, staging := m.rules.chain, m.rules.staging
	ok, err := m.chainMatches(live)
	if err != nil {
		return err
	}
	if !ok {
		refs, err := m.jumpPositions(live)
		if err != nil {
			return err
		}
		if len(refs) > 0 {
			// Traffic flows through the live chain: park it on a complete
			// staging chain first. A staging jump left by a crash goes
			// first, so that filling the staging chain is unseen.
			if err := m.deleteJumps(staging, 0); err != nil {
				return err
			}
			if err := m.fill(staging); err != nil {
				return err
			}
			if err := m.moveJump(staging, live); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("converge chain %s before filling it: %w", live, err)
		}
		if err := m.fill(live); err != nil {
			return err
		}
	}
	return m.settle()
}

// settle leaves exactly one jump, to the live chain, and no staging chain.
// The live chain must already hold the wanted rules.
func (m *Manager) settle() error {
	live, staging := m.rules.chain, m.rules.staging
	liveRefs, err := m.jumpPositions(live)
	if err != nil {
		return err
	}
	stagingRefs, err := m.jumpPositions(staging)
	if err != nil {
		return err
	}
	// The periodic Sync of an unchanged node ends here, with reads only.
	if len(liveRefs) != 1 || len(stagingRefs) != 0 {
		if err := m.moveJump(live, staging); err != nil {
			return err
		}
		// Duplicates can only come from someone else; keep the first.
		if err := m.deleteJumps(live, 1); err != nil {
			return err
		}
	}
	if err := m.ipt.ClearAndDeleteChain(natTable, staging); err != nil {
		return fmt.Errorf("delete staging chain %s: %w", staging, err)
	}
	return nil
}

// moveJump points POSTROUTING at chain to instead of chain from: it inserts
// the jump to `to` where the first jump to `from` is (or appends it when
// there is none, and none to `to` either), then deletes every jump to `from`.
// Inserting before deleting means a packet always meets a complete chain.
func (m *Manager) moveJump(to, from string) error {
	toRefs, err := m.jumpPositions(to)
	if err != nil {
		return err
	}
	fromRefs, err := m.jumpPositions(from)
	if err != nil {
		return err
	}
	switch {
	case len(toRefs) > 0:
		// Already reachable.
	case len(fromRefs) > 0:
		if err := m.ipt.Insert(natTable, postrouting, fromRefs[0], jumpSpec(to)...); err != nil {
			return fmt.Errorf("insert jump to %s at %s position %d: %w", to, postrouting, fromRefs[0], err)
		}
	default:
		if err := m.ipt.Append(natTable, postrouting, jumpSpec(to)...); err != nil {
			return fmt.Errorf("append jump to %s in %s: %w", to, postrouting, err)
		}
	}
	return m.deleteJumps(from, 0)
}

// deleteJumps deletes jumps to chain from POSTROUTING until keep are left.
// Rules are deleted by spec, never by position, so that a rule another
// program inserts meanwhile can never be deleted by mistake.
func (m *Manager) deleteJumps(chain string, keep int) error {
	refs, err := m.jumpPositions(chain)
	if err != nil {
		return err
	}
	for range max(len(refs)-keep, 0) {
		if err := m.ipt.DeleteIfExists(natTable, postrouting, jumpSpec(chain)...); err != nil {
			return fmt.Errorf("delete jump to %s from %s: %w", chain, postrouting, err)
		}
	}
	return nil
}

// jumpPositions returns the 1-based positions in POSTROUTING of our jumps
// to chain.
func (m *Manager) jumpPositions(chain string) ([]int, error) {
	lines, err := m.ipt.List(natTable, postrouting)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", postrouting, err)
	}
	want := listLine(postrouting, jumpSpec(chain))
	var pos []int
	n := 0
	for _, l := range lines {
		if !strings.HasPrefix(l, "-A ") {
			continue
		}
		n++
		if l == want {
			pos = append(pos, n)
		}
	}
	return pos, nil
}

// chainMatches reports whether chain exists and holds exactly the wanted
// rules in order.
func (m *Manager) chainMatches(chain string) (bool, error) {
	exists, err := m.ipt.ChainExists(natTable, chain)
	if err != nil {
		return false, fmt.Errorf("look up chain %s: %w", chain, err)
	}
	if !exists {
		return false, nil
	}
	lines, err := m.ipt.List(natTable, chain)
	if err != nil {
		return false, fmt.Errorf("list chain %s: %w", chain, err)
	}
	got := slices.DeleteFunc(lines, func(l string) bool { return !strings.HasPrefix(l, "-A ") })
	return slices.Equal(got, m.wantLines(chain)), nil
}

// wantLines is the chain's wanted content as `iptables -S` prints it.
func (m *Manager) wantLines(chain string) []string {
	out := make([]string, 0, len(m.rules.chainRules))
	for _, r := range m.rules.chainRules {
		out = append(out, listLine(chain, r))
	}
	return out
}

// fill makes chain, which no packet may traverse, hold the wanted rules.
func (m *Manager) fill(chain string) error {
	if err := m.ipt.ClearChain(natTable, chain); err != nil {
		return fmt.Errorf("create or flush chain %s: %w", chain, err)
	}
	for _, r := range m.rules.chainRules {
		if err := m.ipt.Append(natTable, chain, r...); err != nil {
			return fmt.Errorf("append %q to chain %s: %w", strings.Join(r, " "), chain, err)
		}
	}
	return nil
}
