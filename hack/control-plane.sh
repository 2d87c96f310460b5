#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from the Go module proxy into bin/k8s/.
#
# k8s.io/kubernetes is not meant to be used as a module: its go.mod replaces every
# k8s.io/* staging module with ./staging/src/..., which does not exist in the module
# zip. We build it from a throwaway wrapper module whose go.mod requires
# k8s.io/kubernetes and replaces each staging module with its published v0.x release
# of the same minor. etcd's server module has the same problem in small (its
# go.mod replaces api, client/pkg, client/v3 and pkg with ../ paths), solved the same way.
# Both builds are skipped when the binaries already exist with the wanted version.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${KUBEBUILDER_ASSETS:-$root/bin/k8s}
# Builds take minutes, so finished binaries are also kept in a per-machine cache
# outside the work tree, shared by every checkout (CI clones afresh each run).
cache=${NICPOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nicpool}/control-plane/$KUBE_VERSION-$ETCD_VERSION
mkdir -p "$out"
stamp="$out/.versions"
want="kube=$KUBE_VERSION etcd=$ETCD_VERSION"
complete() { [[ -x $1/kube-apiserver && -x $1/etcd && -x $1/kubectl && "$(cat "$1/.versions" 2>/dev/null)" == "$want" ]]; }
if complete "$out"; then
	exit 0
fi
if complete "$cache"; then
	cp -p "$cache"/kube-apiserver "$cache"/etcd "$cache"/kubectl "$cache"/.versions "$out"/
	echo "control plane copied from $cache"
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}

# kube-apiserver and kubectl.
staging_minor="v0.${KUBE_VERSION#v1.}"
gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
mkdir -p "$work/kube"
{
	echo "module nicpool.local/kubewrapper"
	echo
	echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
	echo
	echo "require k8s.io/kubernetes $KUBE_VERSION"
	echo
	grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v v="$staging_minor" '{print "replace " $1 " => " $1 " " v}'
} >"$work/kube/go.mod"
cat >"$work/kube/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
(cd "$work/kube" && go mod tidy -e >/dev/null 2>&1 || true)
(cd "$work/kube" && go get "k8s.io/kubernetes@$KUBE_VERSION" && \
	CGO_ENABLED=0 go build -trimpath -o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver && \
	CGO_ENABLED=0 go build -trimpath -o "$out/kubectl" k8s.io/kubernetes/cmd/kubectl)

# etcd.
mkdir -p "$work/etcd"
cat >"$work/etcd/go.mod" <<MOD
module nicpool.local/etcdwrapper

go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
MOD
(cd "$work/etcd" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && \
	CGO_ENABLED=0 go build -trimpath -o "$out/etcd" go.etcd.io/etcd/server/v3)

echo "$want" >"$stamp"
mkdir -p "$cache"
cp -p "$out"/kube-apiserver "$out"/etcd "$out"/kubectl "$stamp" "$cache"/
echo "control plane ready in $out: $(ls "$out" | tr '\n' ' ')"
