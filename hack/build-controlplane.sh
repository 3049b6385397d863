#!/usr/bin/env bash
# Builds a real Kubernetes control plane from Go module sources into bin/k8s/<version>/,
# because the usual envtest asset download is unreachable here. Each binary is skipped
# when it is already built for the pinned version, so a warm run takes milliseconds.
#
# Usage: hack/build-controlplane.sh [component...]
#   components: etcd kube-apiserver kubectl kube-controller-manager kube-scheduler
#   default:    etcd kube-apiserver kubectl (what envtest and the admission specs need)
# Prints nothing on a warm run except the asset directory (for KUBEBUILDER_ASSETS).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=v1.37.2
out="${CONTROLPLANE_BIN:-$root/bin/k8s/$version}"
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kube-apiserver kubectl)

mkdir -p "$out"
cd "$root/hack/tools"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
for c in "${components[@]}"; do
  case "$c" in
    etcd) pkg=./etcd ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl) pkg="k8s.io/kubernetes/cmd/$c" ;;
    *) echo "unknown component: $c" >&2; exit 2 ;;
  esac
  [ -x "$out/$c" ] && continue
  echo "building $c $version from module sources (cold: a few minutes)..." >&2
  start=$(date +%s)
  # Build to a temp name and rename, so an interrupted build never leaves a
  # half-written binary that the skip check above would trust.
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/.$c.tmp" "$pkg"
  mv "$out/.$c.tmp" "$out/$c"
  echo "built $c in $(( $(date +%s) - start ))s" >&2
done
echo "$out"
