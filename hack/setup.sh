#!/usr/bin/env bash
# Installs everything the build, the tests and the demo need on a fresh Debian
# machine (run as root): Debian packages, the control-plane binaries (built from
# the Go module proxy, cached) and the code generators. Idempotent and quick
# when everything is already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# iptables and iproute2: node SNAT and the network-namespace testbed.
# containernetworking-plugins: the reference plugins (portmap, bandwidth for
# chaining; ptp + host-local as the benchmark reference).
# util-linux: flock; ca-certificates: TLS to the module proxy.
# iperf3: the datapath benchmark's throughput tool, run only inside the
# testbed's namespaces (make bench).
# containerd and runc: the container runtime of the test clusters' real nodes
# (hack/node-binaries.sh builds kubelet and kube-proxy to go with them). The
# tests run their own containerd per node; on a machine with systemd, Debian's
# package also enables a host containerd service, which the tests do not use.
packages=(iptables iproute2 containernetworking-plugins util-linux ca-certificates make containerd runc iperf3)
missing=()
for p in "${packages[@]}"; do
	[[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "setup: missing Debian packages ${missing[*]}; run as root or install them" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$root/hack/control-plane.sh"
"$root/hack/node-binaries.sh"
"$root/hack/nerdctl.sh"
"$root/hack/tools.sh" controller-gen helm
