#!/usr/bin/env bash
# Builds a real Kubernetes control plane from Go module sources into bin/k8s/<version>/,
# because the usual envtest asset download is unreachable here. Each binary is skipped
# when it is already built for the pinned version, so a warm run takes milliseconds.
#
# Usage: hack/build-controlplane.sh [component...]
#   components: etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kwok
#   default:    etcd kube-apiserver kubectl (what envtest and the admission specs need)
# kwok (fake nodes and pod lifecycles for hack/localcluster.sh) is built from its own
# module, hack/kwok, because it pins k8s.io/* v0.36 while hack/tools pins v1.37.
# Prints nothing on a warm run except the asset directory (for KUBEBUILDER_ASSETS).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=v1.37.2
out="${CONTROLPLANE_BIN:-$root/bin/k8s/$version}"
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kube-apiserver kubectl)

mkdir -p "$out"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
for c in "${components[@]}"; do
  # The version ldflags only make sense for Kubernetes' own binaries; kwok stamps
  # its own version and would ignore them.
  moddir=$root/hack/tools flags=$ldflags
  case "$c" in
    etcd) pkg=./etcd ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl) pkg="k8s.io/kubernetes/cmd/$c" ;;
    kwok) pkg=sigs.k8s.io/kwok/cmd/kwok moddir=$root/hack/kwok flags="-s -w" ;;
    *) echo "unknown component: $c" >&2; exit 2 ;;
  esac
  [ -x "$out/$c" ] && continue
  echo "building $c from module sources (cold: a few minutes)..." >&2
  start=$(date +%s)
  # Build to a temp name and rename, so an interrupted build never leaves a
  # half-written binary that the skip check above would trust.
  (cd "$moddir" && CGO_ENABLED=0 go build -trimpath -ldflags "$flags" -o "$out/.$c.tmp" "$pkg")
  mv "$out/.$c.tmp" "$out/$c"
  echo "built $c in $(( $(date +%s) - start ))s" >&2
done
echo "$out"
