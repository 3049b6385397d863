#!/usr/bin/env bash
# Generates the demo dataset (hack/gendata) into OUTDIR: accounts.csv, users.ndjson,
# feature-requests.csv, tickets.ndjson and configmaps.yaml, the four ConfigMaps that
# the DataSources in config/demo read. Extra arguments go to the generator
# (-users, -accounts, -seed, -now). Dates are relative to today unless -now is given.
#
# Usage: hack/demo-data.sh OUTDIR [gendata flags...]
# Then:  kubectl apply -n NS --server-side -f OUTDIR/configmaps.yaml -f config/demo/
set -euo pipefail

if [ $# -lt 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUTDIR [-users N] [-accounts N] [-seed N] [-now RFC3339]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
out=$1
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
(cd "$root" && go run ./hack/gendata -out "$out" "$@")
echo "$out/configmaps.yaml"
