#!/usr/bin/env bash
# Runs nicpool's benchmarks, each against a reference measured in the same
# run, and prints every figure with its reference and ratio in one table:
#  - pod: pod network ADD+DEL, nicpool (plugin + agent) vs the CNI reference
#    plugins ptp + host-local, both called by libcni from a VM namespace; a
#    burst of 250 concurrent ADDs on a warm node, the same two (wall time,
#    p50/p99 per pod, and the latency distribution drawn as an SVG);
#  - cold: a burst of 250 pods on a cold node (pool at its idle minimum):
#    NIC writes, wall time as a multiple of armsim's PUT latency;
#  - datapath: pod-to-pod across VMs and pod-to-VM single-stream throughput
#    (iperf3) and TCP RTT vs VM-to-VM, inside the testbed's namespaces;
#  - operator: scale-up against the simulated ARM (test/bench/operator).
# Needs root (network namespaces). Every benchmark leaves
# bin/bench/<name>.json ({"figures":[...],"machine":...}); the raw go test
# output stays beside it as <name>.txt. PARTS="pod cold" runs some parts.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bin/bench
mkdir -p "$out" bin/tools
count=${COUNT:-5}
benchtime=${BENCHTIME:-40x}
burst_count=${BURST_COUNT:-3}
burst_benchtime=${BURST_BENCHTIME:-2x}
cold_benchtime=${COLD_BENCHTIME:-3x}
datapath_benchtime=${DATAPATH_BENCHTIME:-7x}
parts=${PARTS:-pod cold datapath operator}

go build -o bin/tools/bench-report ./test/bench/report
report=bin/tools/bench-report

# gobench NAME FILE BENCH ARGS...: run go test benchmark BENCH of test/e2e
# with ARGS, keep its output in $out/FILE.txt and its figures in FILE.json.
gobench() {
	local file=$1 bench=$2
	shift 2
	rm -f "$out/$file.json"
	go test -run '^$' -bench "^Benchmark$bench\$" -timeout 60m "$@" ./test/e2e/ | tee "$out/$file.txt"
	"$report" gobench -bench "$bench" -in "$out/$file.txt" -out "$out/$file.json"
}

if [[ " $parts " == *" pod "* ]]; then
	echo "== pod network ADD+DEL, warm pool ($count runs of $benchtime, nicpool and ptp+host-local alternating)"
	gobench cni PodNetworkAddDel -benchtime "$benchtime" -count "$count"

	echo "== burst: 250 concurrent ADDs on a warm node ($burst_count runs of $burst_benchtime, alternating)"
	rm -f "$out/burst-samples.jsonl" "$out/burst-latency.svg"
	NICPOOL_BENCH_BURST_SAMPLES=$PWD/$out/burst-samples.jsonl \
		gobench burst PodNetworkBurst -benchtime "$burst_benchtime" -count "$burst_count"
	"$report" cdf -in "$out/burst-samples.jsonl" -out "$out/burst-latency.svg" \
		-title "Warm burst of 250 concurrent pod ADDs: per-pod latency, nicpool vs ptp+host-local"
	echo "picture: $out/burst-latency.svg"
fi

if [[ " $parts " == *" cold "* ]]; then
	echo "== cold burst: 250 pods bound to an idle node and ADDed at once ($cold_benchtime)"
	gobench cold PodNetworkColdBurst -benchtime "$cold_benchtime" -count 1
fi

if [[ " $parts " == *" datapath "* ]]; then
	echo "== datapath: iperf3 throughput and TCP RTT, pod-to-pod and pod-to-VM vs VM-to-VM ($datapath_benchtime)"
	gobench datapath PodDatapath -benchtime "$datapath_benchtime" -count 1
fi

if [[ " $parts " == *" operator "* && -d test/bench/operator ]]; then
	echo "== operator scale-up against simulated ARM"
	rm -f "$out"/operator*.json
	test/bench/operator/run.sh | tee "$out/operator.txt"
fi

echo
echo "== every figure (ratio: median of the runs' own ratios; value and reference: medians)"
status=0
"$report" table -dir "$out" || status=$?
case $status in
0) ;;
3) echo "bench: some targets are not met (see README's performance section for what bounds them)" ;;
*) exit "$status" ;;
esac
