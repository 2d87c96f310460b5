#!/usr/bin/env bash
# Runs the operator benchmarks once (nicpool-operator as its own process,
# against armsim with a 2 s NIC PUT latency and ARM's request buckets):
# 64 nodes 0 -> 250 IPs, and 500 nodes x 32 IPs up to the VNet limit. Writes
# bin/bench/operator{,-500}.{json,svg,log}; BENCH=Scale64 or BENCH=VNetLimit500
# runs one.
set -euo pipefail
cd "$(dirname "$0")/../../.."
exec go test ./test/bench/operator -run '^$' -bench "${BENCH:-.}" -benchtime 1x -timeout 30m -count "${COUNT:-1}" "$@"
