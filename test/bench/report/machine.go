package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
)

// machine describes this machine in one line: CPU model and count, memory,
// kernel and the load average when the benchmark ended (the benchmarks run
// on shared machines, where the load moves every figure).
func machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	parts := []string{fmt.Sprintf("%d CPUs %s", runtime.NumCPU(), model)}
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err == nil {
		parts = append(parts, fmt.Sprintf("%.1f GiB RAM", float64(si.Totalram)*float64(si.Unit)/(1<<30)))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		parts = append(parts, "Linux "+strings.TrimSpace(string(b)))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			parts = append(parts, fmt.Sprintf("load average %s %s %s at the end", f[0], f[1], f[2]))
		}
	}
	return strings.Join(parts, ", ")
}
