#!/usr/bin/env bash
# Runs nicpool's benchmarks and prints each figure as a ratio against a
# reference measured in the same run:
#  - pod network ADD+DEL: nicpool (plugin + agent) vs the CNI reference
#    plugins ptp + host-local, both called by libcni from a VM namespace;
#  - operator scale-up against the simulated ARM (test/bench/operator).
# Needs root (network namespaces). Output: bin/bench/*.txt
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bin/bench
mkdir -p "$out"
count=${COUNT:-5}
benchtime=${BENCHTIME:-100x}

echo "== pod network ADD+DEL ($count runs of $benchtime each)"
go test -run '^$' -bench 'PodNetworkAddDel' -benchtime "$benchtime" -count "$count" ./test/e2e/ | tee "$out/cni.txt"
awk '
	/^BenchmarkPodNetworkAddDel\/nicpool/        { n++; a += $3 }
	/^BenchmarkPodNetworkAddDel\/ptp\+host-local/ { m++; b += $3 }
	END {
		if (n == 0 || m == 0) { print "no results"; exit 1 }
		printf "nicpool %.2f ms, ptp+host-local %.2f ms per ADD+DEL: ratio %.2fx\n", a/n/1e6, b/m/1e6, (a/n)/(b/m)
	}' "$out/cni.txt"

if [[ -d test/bench/operator ]]; then
	echo "== operator scale-up against simulated ARM"
	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./test/bench/operator/... | tee "$out/operator.txt"
fi
