package pool

import (
	"slices"
	"testing"
	"time"
)

var testCfg = Config{WarmIPTarget: 5, MinIPTarget: 10, BatchSize: 10, MaxIPs: 250, ReleaseCooldown: time.Minute}

func TestTarget(t *testing.T) {
	tests := []struct {
		name          string
		cfg           Config
		used, pending int
		want          int
	}{
		{"empty node keeps the minimum", testCfg, 0, 0, 10},
		{"warm buffer within the minimum", testCfg, 5, 0, 10},
		{"warm buffer crosses a batch", testCfg, 7, 0, 20},
		{"exact batch boundary", testCfg, 15, 0, 20},
		{"one past the boundary rounds up", testCfg, 16, 0, 30},
		{"pending waiters count as demand", testCfg, 10, 30, 50},
		{"a 250-pod burst asks for the maximum at once", testCfg, 0, 250, 250},
		{"clamped to max IPs", Config{WarmIPTarget: 5, BatchSize: 16, MaxIPs: 100}, 97, 0, 100},
		{"rounding past 250 is clamped", Config{WarmIPTarget: 5, BatchSize: 16, MaxIPs: 250}, 245, 0, 250},
		{"batch size 1 is exact", Config{WarmIPTarget: 3, MinIPTarget: 2, BatchSize: 1, MaxIPs: 250}, 4, 1, 8},
		{"zero warm and min asks for what is used", Config{BatchSize: 1, MaxIPs: 250}, 0, 0, 0},
		{"negative inputs are treated as zero", testCfg, -3, -1, 10},
		{"invalid batch does not divide by zero", Config{WarmIPTarget: 2, MaxIPs: 10}, 1, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Target(tt.cfg, tt.used, tt.pending); got != tt.want {
				t.Errorf("Target(used=%d, pending=%d) = %d, want %d", tt.used, tt.pending, got, tt.want)
			}
		})
	}
}

func TestSelectRelease(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	old := now.Add(-10 * time.Minute)
	recent := now.Add(-10 * time.Second)
	idle := func(ips ...string) []IdleIP {
		out := make([]IdleIP, 0, len(ips))
		for _, ip := range ips {
			out = append(out, IdleIP{IP: ip, IdleSince: old})
		}
		return out
	}
	tests := []struct {
		name string
		in   ReleaseInput
		want []string
	}{
		{"nothing beyond target", ReleaseInput{Now: now, Usable: 10, Target: 10, Free: idle("10.0.0.1")}, nil},
		{"excess released down to target", ReleaseInput{Now: now, Usable: 12, Target: 10, Free: idle("10.0.0.1", "10.0.0.2", "10.0.0.3")}, []string{"10.0.0.1", "10.0.0.2"}},
		{"never more than the free IPs", ReleaseInput{Now: now, Usable: 30, Target: 10, Free: idle("10.0.0.7")}, []string{"10.0.0.7"}},
		{"recently idle IPs stay", ReleaseInput{Now: now, Usable: 12, Target: 10, Free: []IdleIP{{"10.0.0.1", recent}, {"10.0.0.2", old}}}, []string{"10.0.0.2"}},
		{"longest idle goes first", ReleaseInput{Now: now, Usable: 11, Target: 10, Free: []IdleIP{{"10.0.0.1", now.Add(-2 * time.Minute)}, {"10.0.0.2", now.Add(-5 * time.Minute)}}}, []string{"10.0.0.2"}},
		{"no release within cooldown of a scale-up", ReleaseInput{Now: now, Usable: 30, Target: 10, LastScaleUp: recent, Free: idle("10.0.0.1")}, nil},
		{"release after the scale-up cooldown", ReleaseInput{Now: now, Usable: 30, Target: 10, LastScaleUp: old, Free: idle("10.0.0.1")}, []string{"10.0.0.1"}},
		{"no free IPs means nothing, even far above target", ReleaseInput{Now: now, Usable: 40, Target: 10}, nil},
		{"cooldown boundary is inclusive", ReleaseInput{Now: now, Usable: 11, Target: 10, Free: []IdleIP{{"10.0.0.9", now.Add(-time.Minute)}}}, []string{"10.0.0.9"}},
		{"above the fair share: free IPs go at once", ReleaseInput{Now: now, Usable: 12, Target: 20, LastScaleUp: recent, FairShare: ptr(10),
			Free: []IdleIP{{"10.0.0.1", recent}, {"10.0.0.2", now}, {"10.0.0.3", recent}}}, []string{"10.0.0.1", "10.0.0.3"}},
		{"above the fair share: never an IP a pod holds", ReleaseInput{Now: now, Usable: 12, Target: 20, FairShare: ptr(5), Free: idle("10.0.0.4")}, []string{"10.0.0.4"}},
		{"within the fair share: the cooldowns apply", ReleaseInput{Now: now, Usable: 12, Target: 10, FairShare: ptr(12),
			Free: []IdleIP{{"10.0.0.1", recent}, {"10.0.0.2", old}}}, []string{"10.0.0.2"}},
		{"fair share then target", ReleaseInput{Now: now, Usable: 14, Target: 10, FairShare: ptr(13),
			Free: []IdleIP{{"10.0.0.1", recent}, {"10.0.0.2", old}, {"10.0.0.3", old}, {"10.0.0.4", old}, {"10.0.0.5", old}}}, []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}},
		{"a fair share of zero", ReleaseInput{Now: now, Usable: 2, Target: 10, FairShare: ptr(0), Free: []IdleIP{{"10.0.0.1", now}, {"10.0.0.2", now}}}, []string{"10.0.0.1", "10.0.0.2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SelectRelease(testCfg, tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("SelectRelease = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"default is valid", DefaultConfig(), false},
		{"zero batch", Config{MaxIPs: 10}, true},
		{"max above 250", Config{BatchSize: 1, MaxIPs: 251}, true},
		{"negative warm", Config{WarmIPTarget: -1, BatchSize: 1, MaxIPs: 10}, true},
		{"min above max", Config{MinIPTarget: 20, BatchSize: 1, MaxIPs: 10}, true},
		{"negative cooldown", Config{BatchSize: 1, MaxIPs: 10, ReleaseCooldown: -time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func ptr(n int) *int { return &n }
