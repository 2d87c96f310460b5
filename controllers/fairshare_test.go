package controllers

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
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
		{name: "alone gets what it wants", limit: 16000, self: usage{"a", 0, 250}, want: 250},
		{name: "never takes away held IPs", limit: 100, self: usage{"a", 200, 50}, want: 50},
		{name: "shrinking request keeps request", limit: 100, self: usage{"a", 80, 10}, want: 10},
		{name: "above its share: nothing replaces what the agent gives back", limit: 100, self: usage{"a", 60, 60}, others: []usage{{"b", 33, 60}, {"c", 7, 60}}, want: 34},
		{name: "steady", limit: 100, self: usage{"a", 40, 40}, others: []usage{{"b", 60, 60}}, want: 40},
		{name: "no free quota keeps held", limit: 100, self: usage{"a", 10, 50}, others: []usage{{"b", 90, 90}}, want: 10},
		{name: "free quota above others' needs", limit: 100, self: usage{"a", 0, 80}, others: []usage{{"b", 10, 10}}, want: 80},
		{name: "leaves room for others to reach fair share", limit: 100, self: usage{"a", 0, 100}, others: []usage{{"b", 0, 100}}, want: 50},
		{name: "grows past an equal split once others have theirs", limit: 100, self: usage{"a", 50, 100}, others: []usage{{"b", 40, 40}}, want: 60},
		{name: "scarce: proportional, never zero", limit: 100, self: usage{"a", 0, 100}, others: []usage{{"b", 98, 100}, {"c", 0, 100}}, want: 1},
		{name: "zero-demand pools hold back only a floor", limit: 100, self: usage{"a", 0, 100}, others: []usage{{"b", 0, 0}, {"c", 0, 0}}, want: 80},
		{name: "idle pools holding IPs need no floor", limit: 100, self: usage{"a", 0, 100}, others: []usage{{"b", 10, 0}, {"c", 10, 0}}, want: 80},
		{name: "late asker next to full pools is not left at zero", limit: 1000, self: usage{"a", 0, 250}, others: append(repeatNamed(usage{"full", 250, 250}, 3), repeatNamed(usage{"idle", 0, 0}, 3)...), want: 220},
		{name: "first of three stops at its fair share", limit: 100, self: usage{"a", 0, 100}, others: repeatNamed(usage{"b", 0, 100}, 2), want: 34},
		{name: "first of three asking 60 stops at its share", limit: 100, self: usage{"z", 0, 60}, others: repeatNamed(usage{"b", 0, 60}, 2), want: 33},
		{name: "a pool above its share leaves the rest to others", limit: 100, self: usage{"c", 7, 60}, others: []usage{{"a", 60, 60}, {"b", 33, 60}}, want: 7},
		{name: "released quota goes to the pool below its share", limit: 100, self: usage{"c", 7, 60}, others: []usage{{"a", 34, 60}, {"b", 33, 60}}, want: 33},
		{name: "70 nodes: no more than the fair share of 228", limit: 16000, self: usage{"z", 0, 250}, others: repeatNamed(usage{"b", 0, 250}, 69), want: 228},
		{name: "70 nodes: late node gets an equal part of what is free", limit: 16000, self: usage{"z", 0, 250}, others: append(repeatNamed(usage{"full", 250, 250}, 10), repeatNamed(usage{"b", 0, 250}, 59)...), want: 225},
		{name: "water-fill raises the emptiest first", limit: 100, self: usage{"a", 10, 100}, others: []usage{{"b", 30, 100}, {"c", 50, 50}}, want: 20},
		{name: "what the level leaves over goes first by name", limit: 100, self: usage{"a", 0, 100}, others: []usage{{"b", 0, 100}, {"c", 97, 100}}, want: 2},
		{name: "... and not to a later name", limit: 100, self: usage{"b", 0, 100}, others: []usage{{"a", 0, 100}, {"c", 97, 100}}, want: 1},
		{name: "70 nodes: leftover after fair shares", limit: 16000, self: usage{"a", 228, 250}, others: repeatNamed(usage{"b", 228, 250}, 69), want: 229},
		{name: "more pools than quota still gives one", limit: 3, self: usage{"a", 0, 5}, others: repeatNamed(usage{"b", 0, 5}, 5), want: 1},
		{name: "negative want", limit: 10, self: usage{"a", 0, -1}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := fairGrant(tt.limit, tt.self, tt.others); got != tt.want {
				t.Errorf("fairGrant(%d, %+v, %d others) = %d, want %d", tt.limit, tt.self, len(tt.others), got, tt.want)
			}
		})
	}
}

func TestFairShares(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		pools []usage
		want  map[string]int
	}{
		{name: "three asking 60 of 100: the odd IP by name", limit: 100,
			pools: []usage{{"a", 60, 60}, {"b", 33, 60}, {"c", 7, 60}}, want: map[string]int{"a": 34, "b": 33, "c": 33}},
		{name: "same split whoever holds what", limit: 100,
			pools: []usage{{"a", 0, 60}, {"b", 0, 60}, {"c", 60, 60}}, want: map[string]int{"a": 34, "b": 33, "c": 33}},
		{name: "small demands are met, the rest split what is left", limit: 100,
			pools: []usage{{"a", 0, 10}, {"b", 0, 60}, {"c", 0, 60}}, want: map[string]int{"a": 10, "b": 45, "c": 45}},
		{name: "idle pools keep a floor", limit: 100,
			pools: []usage{{"a", 0, 60}, {"b", 0, 0}, {"c", 0, 0}}, want: map[string]int{"a": 60, "b": 10, "c": 10}},
		{name: "the limit covers every demand", limit: 1000,
			pools: []usage{{"a", 0, 250}, {"b", 0, 100}}, want: map[string]int{"a": 250, "b": 100}},
		{name: "fewer IPs than pools", limit: 2,
			pools: []usage{{"a", 0, 5}, {"b", 1, 5}, {"c", 0, 5}}, want: map[string]int{"a": 1, "b": 1, "c": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fairShares(tt.limit, tt.pools); !maps.Equal(got, tt.want) {
				t.Errorf("fairShares = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLedgerConvergesToFairShares plays three pools asking 60 of 100 in every
// order, one at a time (each grown as far as it may before the next asks), and
// with agents that give back free IPs above the fair share their status
// shows: every order ends at 34/33/33.
func TestLedgerConvergesToFairShares(t *testing.T) {
	orders := [][]string{{"a", "b", "c"}, {"a", "c", "b"}, {"b", "a", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"c", "b", "a"}}
	for _, order := range orders {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			l := NewLedger(100)
			l.Rebuild(nil)
			woken := map[string]bool{}
			l.wake = func(p []string) {
				for _, n := range p {
					woken[n] = true
				}
			}
			held := map[string]int{}
			released := map[string]int{}
			published := map[string]int{}
			// pass is one reconcile: remove what the agent released, grow
			// to the grant (as computePlan does), publish the share.
			pass := func(p string) {
				g := l.Reserve(p, "v", held[p], 60)
				keep := held[p] - released[p]
				held[p], released[p] = keep+max(0, g-keep), 0
				l.Settle(p, "v", held[p])
				share, binding := l.FairShare(p)
				published[p] = noShare
				if binding {
					published[p] = share
				}
				l.Published(p, published[p])
			}
			// agent lists in ipsNotInUse what is above the share its status
			// shows; its spec change is a reconcile of its own.
			agent := func(p string) {
				if s := published[p]; s != noShare && held[p]-released[p] > s {
					released[p] = held[p] - s
					woken[p] = true
				}
			}
			for _, p := range order {
				l.Observe(p, "v", held[p], 60, published[p])
				pass(p)
			}
			for round := 0; round < 10 && len(woken) > 0; round++ {
				names := slices.Sorted(maps.Keys(woken))
				clear(woken)
				for _, p := range names {
					pass(p)
				}
				for _, p := range order {
					agent(p)
				}
			}
			if len(woken) > 0 {
				t.Errorf("still waking %v after 10 rounds", slices.Sorted(maps.Keys(woken)))
			}
			got := []int{held["a"], held["b"], held["c"]}
			slices.Sort(got)
			if !slices.Equal(got, []int{33, 33, 34}) {
				t.Errorf("pools hold %v (a, b, c: %d, %d, %d), want 33/33/34", got, held["a"], held["b"], held["c"])
			}
			if used, _ := l.Used("v"); used > 100 {
				t.Errorf("quota used %d > 100", used)
			}
		})
	}
}

func repeatNamed(u usage, n int) []usage {
	out := make([]usage, n)
	for i := range out {
		out[i] = u
		out[i].Name = fmt.Sprintf("%s%02d", u.Name, i)
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
				l.Observe(fmt.Sprintf("p%d", i), "v", 0, tt.want, noShare)
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
			l.Observe("b", "v", 30, 50, noShare)
			l.Observe("c", "v", 10, 50, noShare)
			var got []string
			l.wake = func(p []string) { got = append(got, p...) }
			tt.release(l)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("woken %v, want %v", got, tt.want)
			}
		})
	}
}

// TestFairGrantsAddUpToTheFreeQuota computes every pool's grant from one
// view of the ledger: when the free quota is short of what the pools below
// their shares need, the grants use all of it and no more (a proportional
// split rounded down left IPs unclaimed that nothing woke the pools for).
func TestFairGrantsAddUpToTheFreeQuota(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 13))
	for trial := range 500 {
		limit := 50 + r.IntN(2000)
		pools := make([]usage, 2+r.IntN(40))
		used := 0
		for i := range pools {
			pools[i] = usage{Name: fmt.Sprintf("p%02d", i), Want: 1 + r.IntN(250)}
			if room := limit - used; room > 0 {
				pools[i].Used = r.IntN(min(room, pools[i].Want) + 1)
				used += pools[i].Used
			}
		}
		shares := fairShares(limit, pools)
		free, need, granted := limit-used, 0, 0
		for i, p := range pools {
			need += max(0, shares[p.Name]-p.Used)
			others := slices.Delete(slices.Clone(pools), i, i+1)
			g, _ := fairGrant(limit, p, others)
			if g > max(p.Used, shares[p.Name]) {
				t.Fatalf("trial %d: %s granted %d above its share %d", trial, p.Name, g, shares[p.Name])
			}
			granted += max(0, g-p.Used)
		}
		if want := min(free, need); granted != want {
			t.Fatalf("trial %d: grants add %d IPs, want %d (free %d, need %d)", trial, granted, want, free, need)
		}
	}
}
