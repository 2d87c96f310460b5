#!/usr/bin/env bash
# Runs the operator scale benchmark once: 64 nodes, 0 -> 250 IPs each, against
# armsim with a 2 s NIC PUT latency and ARM's write bucket (200, 10/s).
set -euo pipefail
cd "$(dirname "$0")/../../.."
exec go test ./test/bench/operator -run '^$' -bench . -benchtime 1x -count "${COUNT:-1}" "$@"
