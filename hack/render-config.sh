#!/usr/bin/env bash
# Renders a kustomization of config/ with the manager image set, to stdout,
# without editing a tracked file: the image is set by a throwaway overlay in a
# temp dir that points at the real config/<dir> (kustomize allows a base
# outside the overlay's root).
#
# Usage: hack/render-config.sh IMAGE [DIR]    (DIR under config/, default: default)
# $KUSTOMIZE is the kustomize binary (the Makefile passes bin/kustomize).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
img=${1:?usage: hack/render-config.sh IMAGE [DIR]}
dir=${2:-default}
kustomize=${KUSTOMIZE:-$root/bin/kustomize}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- $(realpath --relative-to="$tmp" "$root/config/$dir")
YAML
(cd "$tmp" && "$kustomize" edit set image controller="$img")
"$kustomize" build "$tmp"
