#!/usr/bin/env bash
# Copies what the Helm chart shares with the kustomize config into
# charts/nicpool: the generated CRDs (config/crd/bases -> crds/), the generated
# ClusterRoles (config/rbac/{operator,operator-services,agent}/role.yaml -> files/) and the
# agent admission policy's rules (config/policy -> files/). Run it after
# `make manifests`; test/install fails when the copies are stale.
#
# Usage: hack/sync-chart-crds.sh [--check]   (--check: fail instead of copying)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
chart=$root/charts/nicpool
check=false
[[ ${1:-} == --check ]] && check=true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/crds" "$work/files"
cp "$root"/config/crd/bases/*.yaml "$work/crds/"
cp "$root/config/rbac/operator/role.yaml" "$work/files/operator-role.yaml"
cp "$root/config/rbac/operator-services/role.yaml" "$work/files/operator-services-role.yaml"
cp "$root/config/rbac/agent/role.yaml" "$work/files/agent-role.yaml"
# The policy's variables and validations: from "  variables:" to the end of
# the first document, one indent level less.
sed -n '/^  variables:/,/^---/p' "$root/config/policy/agent_own_pool.yaml" |
	sed '/^---/d; s/^  //' >"$work/files/agent-policy-rules.yaml"
if [[ ! -s $work/files/agent-policy-rules.yaml ]]; then
	echo "sync-chart-crds: no 'variables:' section found in config/policy/agent_own_pool.yaml" >&2
	exit 1
fi

if $check; then
	diff -r "$work/crds" "$chart/crds" >&2 || { echo "charts/nicpool/crds is stale: run hack/sync-chart-crds.sh" >&2; exit 1; }
	for f in "$work"/files/*; do
		cmp -s "$f" "$chart/files/$(basename "$f")" || { echo "charts/nicpool/files/$(basename "$f") is stale: run hack/sync-chart-crds.sh" >&2; exit 1; }
	done
	exit 0
fi
rm -f "$chart"/crds/*.yaml
mkdir -p "$chart/crds" "$chart/files"
cp "$work"/crds/*.yaml "$chart/crds/"
cp "$work"/files/*.yaml "$chart/files/"
