#!/usr/bin/env bash
# Builds nicpool's container images as tarballs under bin/images/, without a
# Docker daemon and without pulling from any registry:
#   bin/images/nicpool-operator.tar  /nicpool-operator, runs as 65532
#   bin/images/nicpool-agent.tar     /nicpool-agent and the CNI plugin at
#                                    /usr/local/bin/nicpool, runs as root
# Both are static Go binaries (CGO_ENABLED=0) on an empty base with the
# build machine's CA bundle (the operator calls ARM over TLS), assembled by
# hack/imagebuild (go-containerregistry). ko is not used: its base images come
# from a registry. The agent programs SNAT through go-iptables, which runs the
# iptables command, so the agent image also carries the build machine's
# iptables (Debian's package: xtables-nft-multi and xtables-legacy-multi, the
# libraries they load and their extensions); `iptables` is the nft variant
# unless IPTABLES_MODE=legacy, and must match what the nodes' kube-proxy uses. Load a tarball with `docker load -i`, `ctr images import`
# or `kind load image-archive`, or push it with `crane push`.
#
# Environment: REGISTRY (default ghcr.io/nicpool), TAG (default dev),
# GOARCH (default amd64; the bundled iptables is the build machine's, so
# cross-building needs the target's iptables), IPTABLES_MODE (nft or legacy).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
registry=${REGISTRY:-ghcr.io/nicpool}
tag=${TAG:-dev}
arch=${GOARCH:-amd64}
out=$root/bin/images
build=$out/build
cacert=/etc/ssl/certs/ca-certificates.crt

fail() {
	echo "hack/images.sh: $*" >&2
	exit 1
}

iptables_mode=${IPTABLES_MODE:-nft}
xtables_dir=/usr/lib/x86_64-linux-gnu/xtables
[[ $iptables_mode == nft || $iptables_mode == legacy ]] || fail "IPTABLES_MODE must be nft or legacy, not $iptables_mode"
[[ $arch == amd64 ]] || fail "GOARCH=$arch: the agent image bundles this machine's amd64 iptables; build on the target architecture"
for b in /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi; do
	[[ -x $b ]] || fail "$b is missing: install Debian's iptables package (apt-get install iptables)"
done
[[ -d $xtables_dir ]] || fail "$xtables_dir is missing: install Debian's iptables package"
[[ -r $cacert ]] || fail "no CA bundle at $cacert: install Debian's ca-certificates package"
for cmd in nicpool-operator nicpool-agent nicpool; do
	compgen -G "$root/cmd/$cmd/*.go" >/dev/null || fail "cmd/$cmd has no Go files yet: cannot build its binary"
done

mkdir -p "$build"
cd "$root"
for cmd in nicpool-operator nicpool-agent nicpool; do
	echo "building $cmd (linux/$arch, static)" >&2
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags="-s -X main.version=$tag" -o "$build/$cmd" "./cmd/$cmd"
done

imagebuild=$build/imagebuild
(cd "$root/hack/imagebuild" && CGO_ENABLED=0 go build -o "$imagebuild" .)

# iptables_args prints the --file and --symlink arguments that put iptables,
# its shared libraries (with the dynamic loader) and its extensions into the
# image at the paths the build machine has them.
iptables_args() {
	local libs f
	libs=$(
		for f in /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi "$xtables_dir"/*.so; do
			ldd "$f" | awk '/=>/ {print $3} /^\t\/[^ ]*ld-linux/ {print $1}'
		done | sort -u
	)
	for f in /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi "$xtables_dir"/*.so $libs; do
		echo "--file=$(readlink -f "$f")=$f"
	done
	for v in nft legacy; do
		for c in iptables iptables-save iptables-restore; do
			echo "--symlink=/usr/sbin/$c-$v=xtables-$v-multi"
		done
	done
	for c in iptables iptables-save iptables-restore; do
		echo "--symlink=/usr/sbin/$c=xtables-$iptables_mode-multi"
	done
}
mapfile -t iptables_files < <(iptables_args)

labels="org.opencontainers.image.source=https://github.com/nicpool/nicpool,org.opencontainers.image.version=$tag"
# publish FILE: moves bin/images/build/FILE to bin/images/FILE unless that
# already holds the same bytes (the builds are reproducible), so that reruns
# leave unchanged tarballs untouched.
publish() {
	if cmp -s "$build/$1" "$out/$1"; then
		rm -f "$build/$1"
	else
		mv "$build/$1" "$out/$1"
	fi
}

"$imagebuild" --tag "$registry/nicpool-operator:$tag" --out "$build/nicpool-operator.tar" \
	--platform "linux/$arch" --labels "$labels" --user 65532:65532 \
	--entrypoint /nicpool-operator \
	--file "$build/nicpool-operator=/nicpool-operator" \
	--file "$cacert=/etc/ssl/certs/ca-certificates.crt"
publish nicpool-operator.tar
# The agent runs as root (it writes the host's CNI directories and programs
# iptables with NET_ADMIN); the DaemonSet drops every other capability.
"$imagebuild" --tag "$registry/nicpool-agent:$tag" --out "$build/nicpool-agent.tar" \
	--platform "linux/$arch" --labels "$labels" --user 0:0 \
	--entrypoint /nicpool-agent \
	--file "$build/nicpool-agent=/nicpool-agent" \
	--file "$build/nicpool=/usr/local/bin/nicpool" \
	--file "$cacert=/etc/ssl/certs/ca-certificates.crt" \
	"${iptables_files[@]}"
publish nicpool-agent.tar
echo "images written: $out/nicpool-operator.tar $out/nicpool-agent.tar ($registry/*:$tag)" >&2
