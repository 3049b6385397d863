#!/usr/bin/env bash
# Smoke check for hack/localcluster.sh: Jobs really run to completion (and to failure)
# on the kwok-backed local control plane, quickly enough for end-to-end tests.
#
#   hack/localcluster-smoke.sh        (SMOKE_JOBS=N to create N Jobs instead of 50)
#
# Brings the cluster up if it is not, and leaves it as it found it: down again if
# this script started it; otherwise only its own namespace is removed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
lc=$root/hack/localcluster.sh
jobs=${SMOKE_JOBS:-50}

now_ms() { date +%s%3N; }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }

started=false
up_time="(already up)"
ns=""
tmp=""
cleanup() {
  local rc=$?
  [ -z "$tmp" ] || rm -rf "$tmp"
  if [ "$started" = true ]; then
    "$lc" down
  elif [ -n "$ns" ]; then
    # Someone else's cluster: take away only what we made.
    kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

if ! "$lc" status >/dev/null 2>&1; then
  t=$(now_ms)
  started=true
  "$lc" up >/dev/null
  up_time="$(secs_since "$t")s"
fi
eval "$("$lc" env 2>/dev/null)"
bindir=$("$root/hack/build-controlplane.sh" kubectl)
kubectl() { "$bindir/kubectl" --request-timeout=30s "$@"; }

ns=smoke-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
kubectl create namespace "$ns" >/dev/null
t=$(now_ms)
# The ServiceAccount admission rejects pods in a namespace until the controller
# manager has made its `default` ServiceAccount.
until kubectl -n "$ns" get serviceaccount default >/dev/null 2>&1; do
  [ "$(secs_since "$t" | cut -d. -f1)" -lt 30 ] || fail "no default ServiceAccount in $ns after 30s"
  sleep 0.1
done
sa_time=$(secs_since "$t")

# job NAME [LABELS]: a minimal Job; kwok never runs the image, so any name does.
job() {
  cat <<EOF
---
apiVersion: batch/v1
kind: Job
metadata:
  name: $1
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: {${2:-}}
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: ["true"]
EOF
}

# Jobs in $ns whose condition $1 is True, in one list call, so that polling it
# measures the cluster. (`kubectl wait --all` waits for one object after another,
# ~0.1 s each: for 200 Jobs that would be most of what it measured.)
count_condition() {
  kubectl -n "$ns" get jobs -o "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"$1\")].status}{\"\\n\"}{end}" |
    grep -c '^True$' || true
}

# Four kubectl processes create the Jobs at once: a single kubectl sends one request
# at a time and would measure its own round trips rather than the cluster.
tmp=$(mktemp -d)
for ((i = 0; i < jobs; i++)); do job "ok-$i" >>"$tmp/jobs-$((i % 4)).yaml"; done
t=$(now_ms)
pids=()
for f in "$tmp"/jobs-*.yaml; do
  kubectl -n "$ns" create -f "$f" >/dev/null &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "creating Jobs failed"; done
create_time=$(secs_since "$t")
until [ "$(count_condition Complete)" = "$jobs" ]; do
  [ "$(secs_since "$t" | cut -d. -f1)" -lt 120 ] ||
    fail "only $(count_condition Complete) of $jobs Jobs completed within 120s"
  sleep 0.1
done
complete_time=$(secs_since "$t")
succeeded=$(kubectl -n "$ns" get jobs -o 'jsonpath={range .items[*]}{.status.succeeded}{"\n"}{end}' | grep -c '^1$' || true)
[ "$succeeded" = "$jobs" ] || fail "$succeeded of $jobs Jobs report one succeeded pod"

t=$(now_ms)
job doomed '"kwok.x-k8s.io/fail": "true"' | kubectl -n "$ns" create -f - >/dev/null
kubectl -n "$ns" wait --for=condition=Failed job/doomed --timeout=60s >/dev/null ||
  fail "Job doomed (fail label) did not fail within 60s"
fail_time=$(secs_since "$t")
[ "$(kubectl -n "$ns" get job doomed -o 'jsonpath={.status.conditions[?(@.type=="Complete")].status}')" = "" ] ||
  fail "Job doomed is both Failed and Complete"
exit_code=$(kubectl -n "$ns" get pods -l job-name=doomed -o 'jsonpath={.items[0].status.containerStatuses[0].state.terminated.exitCode}')
[ "$exit_code" = 1 ] || fail "doomed's container exit code is '$exit_code', want 1"

# RBAC is on: the operator's identity can do nothing until someone binds its role.
if kubectl --kubeconfig "$(dirname "$KUBECONFIG")/manager.kubeconfig" -n "$ns" get jobs >/dev/null 2>&1; then
  fail "manager.kubeconfig could list Jobs without any RoleBinding: is RBAC off?"
fi

echo "smoke: PASS"
row() { printf '  %-30s %s\n' "$1" "$2"; }
row "cluster up:" "$up_time"
row "default ServiceAccount:" "${sa_time}s after namespace creation"
row "$jobs Jobs created:" "${create_time}s"
row "$jobs Jobs complete:" "${complete_time}s after the first create"
row "failing Job Failed:" "${fail_time}s after create (exit code 1, BackoffLimitExceeded)"
