#!/usr/bin/env bash
# Builds the Kubernetes binaries a real node and a full control plane need, from
# the Go module proxy, with the same wrapper-module method as hack/control-plane.sh:
#   bin/node/kubelet, bin/node/kube-proxy                    NODE_KUBE_VERSION (v1.34.2)
#   bin/k8s/kube-scheduler, bin/k8s/kube-controller-manager  KUBE_VERSION (v1.37.2, the API server's)
# A 1.34 kubelet under a 1.37 API server is within Kubernetes' version-skew policy
# (nodes may be three minors older), and 1.34 still runs on a cgroup v1 host.
# Debian's containerd and runc come from hack/setup.sh's package list.
#
# Each set is built once per version and kept in the per-machine cache
# (~/.cache/nicpool/node/<version>, ~/.cache/nicpool/kube-components/<version>),
# so fresh checkouts copy instead of compiling. A build takes several minutes on
# 2 cores; a progress line is printed every 30 seconds.
#
# Usage: hack/node-binaries.sh [node|components|all]   (default all)
set -euo pipefail

NODE_KUBE_VERSION=${NODE_KUBE_VERSION:-v1.34.2}
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
root=$(cd "$(dirname "$0")/.." && pwd)
cache_root=${NICPOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nicpool}
what=${1:-all}
export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}

log() { echo "node-binaries: $*" >&2; }

# complete DIR STAMP WANT BINARY...: every binary is there and the stamp says WANT.
complete() {
	local dir=$1 stamp=$2 want=$3 b
	shift 3
	for b in "$@"; do [[ -x $dir/$b ]] || return 1; done
	[[ "$(cat "$dir/$stamp" 2>/dev/null)" == "$want" ]]
}

# ldflags VERSION: the version stamps Kubernetes' own build sets; without them
# a kubelet registers its Node as v0.0.0 and components log a skew warning.
ldflags() {
	local v=$1 minor
	minor=${v#v1.}
	minor=${minor%%.*}
	local f="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		f+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
		f+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	echo "$f"
}

# wrapper DIR VERSION: a module requiring k8s.io/kubernetes@VERSION with every
# staging module replaced by its published v0.<minor>.<patch> release (the
# kubernetes go.mod points them at ./staging, which is not in the module zip).
wrapper() {
	local dir=$1 v=$2 gomod staging
	staging="v0.${v#v1.}"
	log "downloading k8s.io/kubernetes@$v from the module proxy"
	gomod=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
	[[ -n $gomod ]] || { log "could not download k8s.io/kubernetes@$v"; return 1; }
	mkdir -p "$dir"
	{
		echo "module nicpool.local/kubewrapper"
		echo
		echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
		echo
		echo "require k8s.io/kubernetes $v"
		echo
		grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v s="$staging" '{print "replace " $1 " => " $1 " " s}'
	} >"$dir/go.mod"
	(cd "$dir" && go get "k8s.io/kubernetes@$v" >/dev/null 2>&1) || (cd "$dir" && go get "k8s.io/kubernetes@$v")
}

# build OUT VERSION CMD...: compiles the commands in one `go build`, so the
# packages they share are compiled once, printing progress while it runs.
build() {
	local out=$1 v=$2
	shift 2
	local work pkgs=() c start ticker rc=0
	work=$(mktemp -d)
	wrapper "$work" "$v"
	for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
	mkdir -p "$work/out"
	log "building $* $v (several minutes on 2 cores; progress every 30s)"
	start=$SECONDS
	(
		while sleep 30; do
			log "building $* $v: $(wc -l <"$work/build.log") packages compiled, $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s"
		done
	) &
	ticker=$!
	(cd "$work" && CGO_ENABLED=0 go build -v -trimpath -ldflags "$(ldflags "$v")" -o "$work/out/" "${pkgs[@]}" 2>"$work/build.log") || rc=$?
	kill "$ticker" 2>/dev/null || true
	wait "$ticker" 2>/dev/null || true
	if ((rc != 0)); then
		grep -v '^[a-z0-9./_-]*$' "$work/build.log" >&2 || tail -n 40 "$work/build.log" >&2
		rm -rf "$work"
		log "building $* $v failed"
		return "$rc"
	fi
	mkdir -p "$out"
	for c in "$@"; do cp -p "$work/out/$c" "$out/$c"; done
	rm -rf "$work"
	log "built $* $v in $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s"
}

# ensure OUT STAMP VERSION CACHE CMD...: OUT has CMD... at VERSION, from the
# cache when it has them, else built (and then cached).
ensure() {
	local out=$1 stamp=$2 v=$3 cache=$4
	shift 4
	local want="kube=$v" c lock
	complete "$out" "$stamp" "$want" "$@" && return 0
	mkdir -p "$out" "$(dirname "$cache")"
	# One build per cache entry at a time: a second caller waits, then copies.
	exec {lock}>"$cache.lock"
	flock "$lock"
	if ! complete "$cache" "$stamp" "$want" "$@"; then
		rm -rf "$cache.tmp"
		build "$cache.tmp" "$v" "$@"
		echo "$want" >"$cache.tmp/$stamp"
		rm -rf "$cache"
		mv "$cache.tmp" "$cache"
	fi
	for c in "$@"; do cp -p "$cache/$c" "$out/$c"; done
	cp -p "$cache/$stamp" "$out/$stamp"
	exec {lock}>&-
	log "$* $v ready in $out"
}

case $what in
node | all) ;;
components) ;;
*)
	echo "usage: $0 [node|components|all]" >&2
	exit 2
	;;
esac
if [[ $what == node || $what == all ]]; then
	ensure "$root/bin/node" .versions "$NODE_KUBE_VERSION" "$cache_root/node/$NODE_KUBE_VERSION" kubelet kube-proxy
fi
if [[ $what == components || $what == all ]]; then
	# bin/k8s/.versions belongs to hack/control-plane.sh; these two have their own stamp.
	# Next to kube-apiserver, wherever hack/control-plane.sh put it.
	ensure "${KUBEBUILDER_ASSETS:-$root/bin/k8s}" .versions-components "$KUBE_VERSION" "$cache_root/kube-components/$KUBE_VERSION" \
		kube-scheduler kube-controller-manager
fi
