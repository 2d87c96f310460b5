#!/usr/bin/env bash
# Fails when the generated files (deepcopy, CRD, RBAC roles, chart CRDs) differ
# from what the generators produce from the current sources.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/operator config/rbac/operator-services config/rbac/agent charts/nicpool/crds)
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
for p in "${paths[@]}"; do
	[[ -e $p ]] && mkdir -p "$before/$(dirname "$p")" && cp -r "$p" "$before/$p"
done
make --no-print-directory -s generate manifests >/dev/null
stale=0
for p in "${paths[@]}"; do
	if ! diff -r "$before/$p" "$p" >/dev/null 2>&1; then
		echo "stale generated file(s): $p" >&2
		stale=1
	fi
done
if ((stale)); then
	echo "run 'make generate manifests' and commit the result" >&2
	exit 1
fi
