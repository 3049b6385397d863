#!/usr/bin/env bash
# The scale benchmark of one manager (issue 12), reproducible on one machine:
#   1. a throwaway PostgreSQL (hack/postgres.sh) loaded by hack/gendata -postgres
#      with USERS users, USERS/10 accounts and their feature requests;
#   2. a bare control plane (etcd + kube-apiserver, hack/localcluster.sh with
#      LOCALCLUSTER_COMPONENTS) with the CRDs and the manager's RBAC, and the
#      manager (bin/manager) as a local process with pprof on loopback, both
#      as hack/demo.sh does it (its functions, sourced);
#   3. hack/benchscale applies hack/bench (3 PostgreSQL DataSources, 11 personas,
#      a playbook) and measures: RSS, apply -> Ready -> memberships equal to SQL,
#      single-row change -> membership and -> Job latency, 1 % churn -> memberships
#      equal to SQL, and a heap profile. Results in $BENCH_OUT (results.txt).
# Everything it starts is stopped on exit, whatever the outcome.
#
# Usage: hack/bench-scale.sh run|down
#   run   (make bench-scale USERS=N) needs bin/manager (make build) and
#         etcd, kube-apiserver, kubectl (make controlplane)
#   down  stop whatever a killed run left behind
# Environment: USERS (default 100000), ACCOUNTS (default USERS/10), BENCH_DIR
# (state, default .bench-scale), BENCH_OUT (default $BENCH_DIR/results-$USERS),
# BENCH_ARGS (extra hack/benchscale flags, e.g. "-changes 200 -idle 2m"),
# MANAGER_GOMEMLIMIT (the manager's GOMEMLIMIT, e.g. 2GiB; unset: none).
# BENCH_MODE=pushdown (make bench-pushdown) runs the push-down benchmark of
# issue 14 instead: only the at-risk persona, evaluated inside PostgreSQL over
# DataSources never loaded into the manager (spec.load None), timed against
# psql running the same translated query (hack/benchscale -pushdown).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
users=${USERS:-100000}
accounts=${ACCOUNTS:-$((users / 10))}
bench_dir=${BENCH_DIR:-$root/.bench-scale}
mode=${BENCH_MODE:-scale}
case "$mode" in
  scale) mode_args=() target=bench-scale manager_args=() ;;
  # The manager's statement timeout is --max-evaluation-time: a 10 M-user
  # query runs for minutes on two cores.
  pushdown) mode_args=(-pushdown) target=bench-pushdown manager_args=(--max-evaluation-time=1h) ;;
  *) echo "BENCH_MODE=$mode: want scale or pushdown" >&2; exit 2 ;;
esac
suffix=$users
[ "$mode" = scale ] || suffix=$mode-$users
out=${BENCH_OUT:-$bench_dir/results-$suffix}
bin=${CONTROLPLANE_BIN:-$root/bin/k8s/v1.37.2}
pgdir=$bench_dir/postgres

export LOCALCLUSTER_DIR=$bench_dir LOCALCLUSTER_COMPONENTS="etcd kube-apiserver"
export DEMO_NAMESPACE=bench-scale KUBECTL=$bin/kubectl
# shellcheck source=hack/demo.sh
. "$root/hack/demo.sh"

down() {
  stop_manager
  "$root/hack/localcluster.sh" down
  "$root/hack/postgres.sh" stop "$pgdir"
}

now_s() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

run() {
  [ -x "$manager" ] || { log "missing $manager: run 'make build'"; exit 1; }
  local c
  for c in etcd kube-apiserver kubectl; do
    [ -x "$bin/$c" ] || { log "missing $bin/$c: run 'make controlplane'"; exit 1; }
  done
  mkdir -p "$bench_dir"
  trap 'rc=$?; down; exit $rc' EXIT
  trap 'exit 130' INT TERM

  local t ports pg_port pprof_port dsn pid
  (cd "$root" && go build -o "$bench_dir/gendata" ./hack/gendata && go build -o "$bench_dir/benchscale" ./hack/benchscale)
  "$root/hack/postgres.sh" install
  "$root/hack/postgres.sh" stop "$pgdir" # a killed run's leftovers
  ports=$(cd "$root" && go run ./hack/localclusterhelper ports 2)
  read -r pg_port pprof_port <<<"$(echo $ports)"
  # Our PID: should this script be killed, the server stops when it is gone.
  dsn=$("$root/hack/postgres.sh" start "$pgdir" "$pg_port" $$)
  t=$(now_s)
  "$bench_dir/gendata" -postgres "$dsn" -users "$users" -accounts "$accounts" -request-rate "${REQUEST_RATE:-2.5}"
  log "data loaded in $(since "$t")s"

  "$root/hack/localcluster.sh" up >/dev/null
  install
  # The benchmark database listens on loopback, which the manager denies by default.
  # MANAGER_GOMEMLIMIT (e.g. 2GiB) gives the manager the soft memory limit its
  # Deployment derives from the container's limit (cmd/memlimit.go).
  if [ -n "${MANAGER_GOMEMLIMIT:-}" ]; then
    GOMEMLIMIT=$MANAGER_GOMEMLIMIT start_manager --pprof-bind-address="127.0.0.1:$pprof_port" --deny-source-cidrs= "${manager_args[@]}"
  else
    start_manager --pprof-bind-address="127.0.0.1:$pprof_port" --deny-source-cidrs= "${manager_args[@]}"
  fi
  # Until the background shell has exec'd the binary, /proc/PID/exe is still bash.
  pid=""
  for _ in $(seq 50); do
    pid=$(manager_pid) && break
    sleep 0.2
  done
  [ -n "$pid" ] || { log "the manager did not start: $(tail -n 20 "$state/logs/manager.log")"; exit 1; }

  rm -rf "$out"
  mkdir -p "$out"
  # shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
  "$bench_dir/benchscale" -kubeconfig "$state/admin.kubeconfig" -namespace "$ns" -dsn "$dsn" \
    -manifests "$root/hack/bench" -manager-pid "$pid" -pprof "127.0.0.1:$pprof_port" -out "$out" \
    -command "make $target USERS=$users${ACCOUNTS:+ ACCOUNTS=$ACCOUNTS}${BENCH_ARGS:+ BENCH_ARGS=\"$BENCH_ARGS\"}" \
    "${mode_args[@]}" ${BENCH_ARGS:-}
  cp "$state/logs/manager.log" "$out/manager.log"
  log "results in $out/results.txt"
}

case "${1:-}" in
  run) run ;;
  down) down ;;
  *) echo "usage: $0 run|down" >&2; exit 2 ;;
esac
