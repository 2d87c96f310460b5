#!/usr/bin/env bash
# Builds every image the real-node test clusters and the demo import into their
# nodes' containerd (`ctr -n k8s.io images import`), as tarballs under
# bin/images/, without a registry or a Docker daemon:
#   nicpool-operator.tar  ghcr.io/nicpool/nicpool-operator:$TAG   (hack/images.sh)
#   nicpool-agent.tar     ghcr.io/nicpool/nicpool-agent:$TAG      (hack/images.sh)
#   pause.tar             nicpool.test/pause:v1      the sandbox image (test/workloads/pause)
#   echo.tar              nicpool.test/echo:v1       the test workload (test/workloads/echo)
#   coredns.tar           nicpool.test/coredns:$COREDNS_VERSION   cluster DNS
# and bin/images/images.txt, one "FILE REFERENCE" line per image. As root, each
# new tarball is then imported into a throwaway containerd (hack/check-images.sh).
#
# CoreDNS comes from github.com/coredns/coredns on the Go module proxy, built
# with the plugins a cluster DNS uses (the kubeadm Corefile's set plus log,
# hosts, rewrite, template and whoami) through CoreDNS's own coremain: the
# full plugin set would pull in every cloud SDK. Its binary is cached in
# ~/.cache/nicpool/coredns/<version>; the other binaries are rebuilt (the Go
# build cache makes that quick). A tarball is replaced only when its content
# changes, so repeated runs leave bin/images untouched.
#
# Environment: TAG (operator and agent tag, default dev), COREDNS_VERSION
# (default v1.15.0), IPTABLES_MODE (see hack/images.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/bin/images
build=$out/build
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
cache_root=${NICPOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nicpool}
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

log() { echo "test-images: $*" >&2; }

mkdir -p "$build"
# One run at a time: runs share bin/images/build.
exec {runlock}>"$out/.lock"
flock "$runlock"
imagebuild=$build/imagebuild
(cd "$root/hack/imagebuild" && CGO_ENABLED=0 go build -o "$imagebuild" .)

# image FILE REF IMAGEBUILD-ARGS...: writes bin/images/FILE unless it already
# holds exactly that image.
image() {
	local file=$1 ref=$2
	shift 2
	"$imagebuild" --tag "$ref" --out "$build/$file" --platform linux/amd64 "$@"
	if cmp -s "$build/$file" "$out/$file"; then
		rm -f "$build/$file"
	else
		mv "$build/$file" "$out/$file"
		log "wrote $out/$file ($ref)"
	fi
}

# coredns BIN: the CoreDNS binary at COREDNS_VERSION, from the cache or built.
coredns() {
	local dest=$1 cache=$cache_root/coredns/$COREDNS_VERSION work lock
	mkdir -p "$cache"
	exec {lock}>"$cache/.lock"
	flock "$lock"
	if [[ ! -x $cache/coredns ]]; then
		work=$(mktemp -d)
		log "building CoreDNS $COREDNS_VERSION from the module proxy (a few minutes)"
		cat >"$work/go.mod" <<-MOD
			module nicpool.local/corednswrapper

			go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')

			require github.com/coredns/coredns $COREDNS_VERSION
		MOD
		cat >"$work/main.go" <<-'GO'
			// Command coredns is CoreDNS with the plugins a cluster DNS uses.
			package main

			import (
				_ "github.com/coredns/coredns/plugin/cache"
				_ "github.com/coredns/coredns/plugin/errors"
				_ "github.com/coredns/coredns/plugin/forward"
				_ "github.com/coredns/coredns/plugin/health"
				_ "github.com/coredns/coredns/plugin/hosts"
				_ "github.com/coredns/coredns/plugin/kubernetes"
				_ "github.com/coredns/coredns/plugin/loadbalance"
				_ "github.com/coredns/coredns/plugin/log"
				_ "github.com/coredns/coredns/plugin/loop"
				_ "github.com/coredns/coredns/plugin/metrics"
				_ "github.com/coredns/coredns/plugin/ready"
				_ "github.com/coredns/coredns/plugin/reload"
				_ "github.com/coredns/coredns/plugin/rewrite"
				_ "github.com/coredns/coredns/plugin/template"
				_ "github.com/coredns/coredns/plugin/whoami"

				"github.com/coredns/coredns/coremain"
			)

			func main() { coremain.Run() }
		GO
		local start=$SECONDS ticker rc=0
		(while sleep 30; do log "building CoreDNS $COREDNS_VERSION: $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s"; done) &
		ticker=$!
		(cd "$work" && GOFLAGS=-mod=mod go get "github.com/coredns/coredns@$COREDNS_VERSION" >/dev/null 2>&1 &&
			GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 &&
			CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/coredns" .) || rc=$?
		kill "$ticker" 2>/dev/null || true
		wait "$ticker" 2>/dev/null || true
		if ((rc != 0)); then
			rm -rf "$work"
			log "building CoreDNS $COREDNS_VERSION failed"
			return 1
		fi
		mv "$work/coredns" "$cache/coredns"
		rm -rf "$work"
	fi
	cp -p "$cache/coredns" "$dest"
	exec {lock}>&-
}

cd "$root"
for w in pause echo; do
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags "-s -w" -o "$build/$w" "./test/workloads/$w"
done
coredns "$build/coredns"

# The sandbox image: no user needed beyond the default nonroot.
image pause.tar nicpool.test/pause:v1 --user 65535:65535 --entrypoint /pause --file "$build/pause=/pause"
image echo.tar nicpool.test/echo:v1 --user 65532:65532 --entrypoint /echo --file "$build/echo=/echo"
# Root so that it can bind port 53 as a cluster DNS does; a Deployment that
# wants non-root sets runAsUser and net.ipv4.ip_unprivileged_port_start=0 (a
# safe, namespaced sysctl) or listens on a high port behind the Service.
image coredns.tar "nicpool.test/coredns:$COREDNS_VERSION" --user 0:0 --entrypoint /coredns --file "$build/coredns=/coredns"

# The operator and agent last: they are built from the work tree, the others
# do not depend on it compiling.
"$root/hack/images.sh"

tag=${TAG:-dev}
registry=${REGISTRY:-ghcr.io/nicpool}
cat >"$out/images.txt.tmp" <<EOF
nicpool-operator.tar $registry/nicpool-operator:$tag
nicpool-agent.tar $registry/nicpool-agent:$tag
pause.tar nicpool.test/pause:v1
echo.tar nicpool.test/echo:v1
coredns.tar nicpool.test/coredns:$COREDNS_VERSION
EOF
if cmp -s "$out/images.txt.tmp" "$out/images.txt"; then
	rm -f "$out/images.txt.tmp"
else
	mv "$out/images.txt.tmp" "$out/images.txt"
fi

# Each new tarball is imported once into a throwaway containerd (root only).
stamp=$out/.checked
if [[ -e $stamp && -z $(find "$out" -maxdepth 1 \( -name '*.tar' -o -name images.txt \) -newer "$stamp") ]]; then
	:
elif [[ $(id -u) -eq 0 ]] && command -v containerd >/dev/null; then
	"$root/hack/check-images.sh" "$out/images.txt"
	touch "$stamp"
else
	log "not checked against containerd (needs root and Debian's containerd): run hack/check-images.sh"
fi
log "images ready in $out (list: $out/images.txt)"
