#!/usr/bin/env bash
# Builds nerdctl (the containerd CLI the standalone tests drive) from the Go
# module proxy into bin/node/nerdctl, cached per version in
# ~/.cache/nicpool/nerdctl/<version>. v1.7.7 speaks to Debian 12's
# containerd 1.6.20 (docs/standalone.md; ../shared REAL-NODES notes: v2.1.3
# works too). `go install` fails because the proxy refuses nerdctl's version
# list, so the exact version is downloaded and built from the module cache.
#
# Usage: hack/nerdctl.sh
set -euo pipefail

NERDCTL_VERSION=${NERDCTL_VERSION:-v1.7.7}
root=$(cd "$(dirname "$0")/.." && pwd)
cache_root=${NICPOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nicpool}
cache=$cache_root/nerdctl/$NERDCTL_VERSION
out=$root/bin/node/nerdctl
export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0

log() { echo "nerdctl: $*" >&2; }

if [[ ! -x $cache/nerdctl ]]; then
	log "downloading github.com/containerd/nerdctl@$NERDCTL_VERSION from the module proxy"
	src=$(go mod download -json "github.com/containerd/nerdctl@$NERDCTL_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	[[ -n $src ]] || { log "could not download nerdctl $NERDCTL_VERSION"; exit 1; }
	mkdir -p "$cache"
	log "building nerdctl $NERDCTL_VERSION (a few minutes on 2 cores)"
	(cd "$src" && go build -trimpath -ldflags "-s -w -X github.com/containerd/nerdctl/pkg/version.Version=$NERDCTL_VERSION" -o "$cache/nerdctl.tmp" ./cmd/nerdctl)
	mv "$cache/nerdctl.tmp" "$cache/nerdctl"
fi
mkdir -p "$(dirname "$out")"
install -m 0755 "$cache/nerdctl" "$out"
log "installed $out ($NERDCTL_VERSION)"
