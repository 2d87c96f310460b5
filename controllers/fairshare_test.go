package controllers

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestFairGrant(t *testing.T) {
	tests := []struct {
		name   string
		limit  int
		self   usage
		others []usage
		want   int
	}{
		{name: "alone gets what it wants", limit: 16000, self: usage{0, 250}, want: 250},
		{name: "never takes away held IPs", limit: 100, self: usage{200, 50}, want: 50},
		{name: "shrinking request keeps request", limit: 100, self: usage{80, 10}, want: 10},
		{name: "steady", limit: 100, self: usage{40, 40}, others: []usage{{60, 60}}, want: 40},
		{name: "no free quota keeps held", limit: 100, self: usage{10, 50}, others: []usage{{90, 90}}, want: 10},
		{name: "free quota above others' needs", limit: 100, self: usage{0, 80}, others: []usage{{10, 10}}, want: 80},
		{name: "leaves room for others to reach fair share", limit: 100, self: usage{0, 100}, others: []usage{{0, 100}}, want: 50},
		{name: "grows past fair share once others have theirs", limit: 100, self: usage{50, 100}, others: []usage{{40, 40}}, want: 60},
		{name: "scarce: proportional, never zero", limit: 100, self: usage{0, 100}, others: []usage{{98, 100}, {0, 100}}, want: 1},
		{name: "zero-demand pools hold back only a floor", limit: 100, self: usage{0, 100}, others: []usage{{0, 0}, {0, 0}}, want: 83},
		{name: "idle pools holding IPs need no floor", limit: 100, self: usage{0, 100}, others: []usage{{10, 0}, {10, 0}}, want: 80},
		{name: "late asker next to full pools is not left at zero", limit: 1000, self: usage{0, 250}, others: append(repeat(usage{250, 250}, 3), usage{0, 0}, usage{0, 0}, usage{0, 0}), want: 223},
		{name: "first of three leaves others their fair share", limit: 100, self: usage{0, 100}, others: repeat(usage{0, 100}, 2), want: 34},
		{name: "70 nodes: room for 69 fair shares of 228", limit: 16000, self: usage{0, 250}, others: repeat(usage{0, 250}, 69), want: 250},
		{name: "70 nodes: late node gets a proportional share", limit: 16000, self: usage{0, 250}, others: append(repeat(usage{250, 250}, 10), repeat(usage{0, 250}, 59)...), want: 225},
		{name: "70 nodes: leftover after fair shares", limit: 16000, self: usage{228, 250}, others: repeat(usage{228, 250}, 69), want: 250},
		{name: "more pools than quota still gives one", limit: 3, self: usage{0, 5}, others: repeat(usage{0, 5}, 5), want: 1},
		{name: "negative want", limit: 10, self: usage{0, -1}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fairGrant(tt.limit, tt.self, tt.others); got != tt.want {
				t.Errorf("fairGrant(%d, %+v, %d others) = %d, want %d", tt.limit, tt.self, len(tt.others), got, tt.want)
			}
		})
	}
}

func repeat(u usage, n int) []usage {
	out := make([]usage, n)
	for i := range out {
		out[i] = u
	}
	return out
}

// TestLedgerNeverExceedsLimit lets many pools race for quota, settling some
// writes and cancelling others, and checks the limit and fairness.
func TestLedgerNeverExceedsLimit(t *testing.T) {
	tests := []struct {
		name        string
		limit, n    int
		want        int
		cancelEvery int
	}{
		{name: "70 pools of 250 on 16000", limit: 16000, n: 70, want: 250},
		{name: "with failed writes", limit: 1000, n: 30, want: 100, cancelEvery: 3},
		{name: "plenty", limit: 16000, n: 10, want: 250},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger(tt.limit)
			l.Rebuild(nil)
			held := make([]int, tt.n)
			for i := range tt.n {
				l.Observe(fmt.Sprintf("p%d", i), "v", 0, tt.want)
			}
			var wg sync.WaitGroup
			for i := range tt.n {
				wg.Go(func() {
					pool := fmt.Sprintf("p%d", i)
					for round := 0; round < 20; round++ {
						g := l.Reserve(pool, "v", held[i], tt.want)
						if used, _ := l.Used("v"); used > tt.limit {
							t.Errorf("quota used %d > limit %d", used, tt.limit)
						}
						if tt.cancelEvery > 0 && rand.IntN(tt.cancelEvery) == 0 {
							l.Cancel(pool)
							continue
						}
						held[i] = max(held[i], g)
						l.Settle(pool, "v", held[i])
					}
				})
			}
			wg.Wait()
			total := 0
			for i, h := range held {
				total += h
				if h == 0 {
					t.Errorf("pool p%d has no IPs", i)
				}
			}
			if total > tt.limit {
				t.Errorf("total %d > limit %d", total, tt.limit)
			}
			if exp := min(tt.limit, tt.n*tt.want); tt.cancelEvery == 0 && total != exp {
				t.Errorf("total %d, want %d", total, exp)
			}
		})
	}
}

func TestLedgerRebuild(t *testing.T) {
	tests := []struct {
		name    string
		entries []LedgerEntry
		want    int // grant for a new pool wanting 100 on limit 100
	}{
		{name: "status counts", entries: []LedgerEntry{{Pool: "a", VNetID: "v", Held: 30, Want: 30}}, want: 70},
		{name: "unverified pool counts its request", entries: []LedgerEntry{{Pool: "a", VNetID: "v", Held: 10, Want: 60}}, want: 40},
		{name: "other vnet ignored", entries: []LedgerEntry{{Pool: "a", VNetID: "w", Held: 90, Want: 90}}, want: 100},
		{name: "pool without vnet ignored", entries: []LedgerEntry{{Pool: "a", Held: 90, Want: 90}}, want: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger(100)
			if l.IsReady() {
				t.Fatal("ledger ready before rebuild")
			}
			l.Rebuild(tt.entries)
			if !l.IsReady() {
				t.Fatal("ledger not ready after rebuild")
			}
			if got := l.Reserve("new", "v", 0, 100); got != tt.want {
				t.Errorf("grant = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestLedgerSettleCancelForget(t *testing.T) {
	l := NewLedger(100)
	l.Rebuild(nil)
	if g := l.Reserve("a", "v", 0, 80); g != 80 {
		t.Fatalf("grant a = %d, want 80", g)
	}
	if g := l.Reserve("b", "v", 0, 80); g != 20 {
		t.Fatalf("grant b with a in flight = %d, want 20", g)
	}
	l.Cancel("a")
	if used, _ := l.Used("v"); used != 20 {
		t.Fatalf("used after cancel = %d, want 20", used)
	}
	l.Settle("b", "v", 20)
	l.Forget("b")
	if used, held := l.Used("v"); used != 0 || held != 0 {
		t.Fatalf("used, held after forget = %d, %d, want 0, 0", used, held)
	}
}

func TestLedgerWakesHeldBackPools(t *testing.T) {
	tests := []struct {
		name    string
		release func(l *Ledger)
		want    []string
	}{
		{name: "release wakes held-back pools, fewest IPs first", release: func(l *Ledger) { l.Settle("a", "v", 50) }, want: []string{"c", "b"}},
		{name: "forget wakes", release: func(l *Ledger) { l.Forget("a") }, want: []string{"c", "b"}},
		{name: "one free IP wakes one pool", release: func(l *Ledger) { l.Settle("a", "v", 59) }, want: []string{"c"}},
		{name: "no change wakes nobody", release: func(l *Ledger) { l.Settle("a", "v", 60) }, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger(100)
			l.Rebuild(nil)
			l.Settle("a", "v", 60)
			l.Settle("b", "v", 30)
			l.Settle("c", "v", 10)
			l.Observe("b", "v", 30, 50)
			l.Observe("c", "v", 10, 50)
			var got []string
			l.wake = func(p []string) { got = append(got, p...) }
			tt.release(l)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("woken %v, want %v", got, tt.want)
			}
		})
	}
}
