#!/usr/bin/env bash
# Runs nicpool's benchmarks and prints each figure as a ratio against a
# reference measured in the same run:
#  - pod network ADD+DEL: nicpool (plugin + agent) vs the CNI reference
#    plugins ptp + host-local, both called by libcni from a VM namespace;
#  - a burst of 250 concurrent ADDs on a warm node, the same two, wall time
#    and p50/p99 per pod;
#  - operator scale-up against the simulated ARM (test/bench/operator).
# Needs root (network namespaces). Output: bin/bench/*.txt
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bin/bench
mkdir -p "$out"
count=${COUNT:-5}
benchtime=${BENCHTIME:-40x}
burst_count=${BURST_COUNT:-3}
burst_benchtime=${BURST_BENCHTIME:-2x}

# ratios FILE NAME TARGET: from the benchmark lines of NAME in FILE, print
# nicpool's and the reference's mean, their ratio against TARGET, and every
# percentile reported, each next to the reference's.
ratios() {
	awk -v name="$2" -v target="$3" '
		$1 ~ "^Benchmark" name "(-[0-9]+)?$" {
			runs++
			for (i = 3; i < NF; i++) { v[$(i+1)] += $i }
		}
		END {
			if (runs == 0) { print name ": no results"; exit 1 }
			r = v["nicpool-ms"] / v["reference-ms"]
			printf "%s: nicpool %.1f ms, ptp+host-local %.1f ms: ratio %.2fx (target <= %.2fx: %s) over %d runs\n",
				name, v["nicpool-ms"]/runs, v["reference-ms"]/runs, r, target, (r <= target ? "met" : "NOT met"), runs
			for (k in v) {
				if (k ~ /^nicpool-.*p[0-9]+-ms$/) {
					ref = k; sub(/^nicpool/, "reference", ref)
					printf "  %s: nicpool %.1f ms, ptp+host-local %.1f ms: ratio %.2fx\n", substr(k, 9), v[k]/runs, v[ref]/runs, v[k]/v[ref]
				}
			}
		}' "$1"
}

# PARTS=pod runs only the pod network benchmarks, PARTS=operator only the
# operator's; both by default.
parts=${PARTS:-pod operator}

if [[ " $parts " == *" pod "* ]]; then
echo "== pod network ADD+DEL, warm pool ($count runs of $benchtime, nicpool and ptp+host-local alternating)"
go test -run '^$' -bench 'PodNetworkAddDel$' -benchtime "$benchtime" -count "$count" -timeout 30m ./test/e2e/ | tee "$out/cni.txt"
ratios "$out/cni.txt" PodNetworkAddDel 0.5

echo "== burst: 250 concurrent ADDs on a warm node ($burst_count runs of $burst_benchtime, alternating)"
go test -run '^$' -bench 'PodNetworkBurst$' -benchtime "$burst_benchtime" -count "$burst_count" -timeout 30m ./test/e2e/ | tee "$out/burst.txt"
ratios "$out/burst.txt" PodNetworkBurst 0.5
fi

if [[ " $parts " == *" operator "* && -d test/bench/operator ]]; then
	echo "== operator scale-up against simulated ARM"
	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./test/bench/operator/... | tee "$out/operator.txt"
fi
