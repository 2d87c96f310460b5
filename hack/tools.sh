#!/usr/bin/env bash
# Installs the developer tools nicpool's build and tests use into bin/tools,
# from the Go module proxy. Idempotent: a tool already present at the wanted
# version is skipped (the version is kept in bin/tools/.<tool>.version).
#
# Usage: hack/tools.sh [controller-gen] [helm] [ko] [golangci-lint]   (no argument: all of them)
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
KO_VERSION=${KO_VERSION:-v0.19.1}
GOLANGCI_LINT_VERSION=${GOLANGCI_LINT_VERSION:-v2.15.0}
CONTROLLER_GEN_VERSION=${CONTROLLER_GEN_VERSION:-v0.23.0}

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/bin/tools
mkdir -p "$bin"

# install NAME MODULE/PATH VERSION builds MODULE/PATH@VERSION into bin/tools/NAME
# unless that version is already there.
install() {
	local name=$1 pkg=$2 version=$3 stamp="$bin/.$1.version"
	if [[ -x $bin/$name && "$(cat "$stamp" 2>/dev/null)" == "$version" ]]; then
		return 0
	fi
	echo "installing $name $version into $bin" >&2
	GOBIN=$bin CGO_ENABLED=0 GOFLAGS=-mod=mod go install "$pkg@$version"
	echo "$version" >"$stamp"
}

want=("$@")
if [[ ${#want[@]} -eq 0 ]]; then
	want=(controller-gen helm ko golangci-lint)
fi
for tool in "${want[@]}"; do
	case $tool in
	controller-gen) install controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen "$CONTROLLER_GEN_VERSION" ;;
	helm) install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" ;;
	ko) install ko github.com/google/ko "$KO_VERSION" ;;
	golangci-lint) install golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION" ;;
	*)
		echo "hack/tools.sh: unknown tool $tool (known: controller-gen helm ko golangci-lint)" >&2
		exit 2
		;;
	esac
done
