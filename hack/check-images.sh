#!/usr/bin/env bash
# Checks that image tarballs import into Debian's containerd the way the test
# clusters' nodes import them (`ctr -n k8s.io images import`, which also
# unpacks every layer), and that each one lands under the reference it
# should: a throwaway containerd with its own root, state, socket and opt
# directories under a temp dir, in a private mount namespace so that its
# snapshot mounts never reach the host. Everything is removed afterwards.
#
# Usage (root): hack/check-images.sh [bin/images/images.txt]
# The list holds "FILE REFERENCE" lines, FILE relative to the list's directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
list=${1:-$root/bin/images/images.txt}
dir=$(cd "$(dirname "$list")" && pwd)

fail() {
	echo "check-images: $*" >&2
	exit 1
}
[[ $(id -u) -eq 0 ]] || fail "needs root (a mount namespace and containerd)"
for c in containerd ctr unshare; do
	command -v "$c" >/dev/null || fail "$c is missing: run hack/setup.sh (Debian's containerd)"
done
[[ -r $list ]] || fail "no image list $list: run hack/test-images.sh"

work=$(mktemp -d /tmp/nicpool-check-images.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/opt"
EOF

# Runs inside the private mount namespace: start containerd, import, list,
# stop it. The namespace, and with it every snapshot mount, ends with it.
cat >"$work/run.sh" <<'EOF'
set -euo pipefail
work=$1 dir=$2 list=$3
containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
pid=$!
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap stop EXIT
ready=false
for _ in $(seq 100); do
	if [[ -S $work/containerd.sock ]] && ctr --address "$work/containerd.sock" version >/dev/null 2>&1; then
		ready=true
		break
	fi
	sleep 0.1
done
if ! $ready; then
	tail -n 20 "$work/containerd.log" >&2
	echo "check-images: containerd did not start" >&2
	exit 1
fi
ctr() { command ctr --address "$work/containerd.sock" -n k8s.io "$@"; }
rc=0
while read -r file ref; do
	[[ -z $file || $file == \#* ]] && continue
	if ! out=$(ctr images import "$dir/$file" 2>&1); then
		echo "check-images: $file does not import: $out" >&2
		rc=1
		continue
	fi
	# Read ctr's whole output before matching: with pipefail, `ctr | grep -q`
	# fails whenever grep exits at its first match before ctr has written
	# everything (ctr then dies of SIGPIPE), a race that depends on the load.
	images=$(ctr images ls -q)
	if ! grep -qxF "$ref" <<<"$images"; then
		echo "check-images: $file imported, but not as $ref: $(tr '\n' ' ' <<<"$images")" >&2
		rc=1
		continue
	fi
	checked=$(ctr images check "name==$ref")
	if ! grep -q complete <<<"$checked"; then
		echo "check-images: $ref is incomplete after import" >&2
		rc=1
		continue
	fi
	echo "check-images: $file imports as $ref"
done <"$list"
exit $rc
EOF
unshare -m --propagation private bash "$work/run.sh" "$work" "$dir" "$list" || fail "some images do not import"
