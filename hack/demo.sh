#!/usr/bin/env bash
# The product end to end on one machine: a local control plane where Jobs really
# complete (hack/localcluster.sh), the CRDs, a realistic sample dataset
# (hack/gendata: users, accounts, feature requests and tickets, dates relative to
# today), the seed personas, a playbook for stalled onboarding, and the manager
# running as a local process with only the RBAC config/rbac grants it. The
# manager acts in the demo namespace as its persona-tenant ServiceAccount
# (config/samples/tenant_serviceaccount.yaml, --default-service-account):
# the ConfigMaps are read, and the Jobs created, with that Role's rights.
# When PostgreSQL is installed, a throwaway event store too: the manager serves
# the Segment-compatible event endpoint, and the demo sends it a burst of
# product-usage events with curl and shows the persona built on them
# (config/demo/events; without PostgreSQL that part is skipped).
#
# Usage: hack/demo.sh up|down
#   up    start everything (idempotent), wait until the personas are Ready, print them
#         and the answer to the headline question
#   down  stop the manager and the local control plane; leaves no process behind
#   check-down  exit non-zero if any process of the demo (manager, control plane) still runs
#
# Sourced (hack/bench-scale.sh does), it only defines its functions: install,
# start_manager [EXTRA_FLAG...], stop_manager, manager_pid, k.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${LOCALCLUSTER_DIR:-$root/.localcluster}
ns=${DEMO_NAMESPACE:-usersuccess-demo}
kubectl=${KUBECTL:-$root/bin/k8s/v1.37.2/kubectl}
manager=${MANAGER_BIN:-$root/bin/manager}
plugin=${PLUGIN_BIN:-$root/bin/kubectl-persona}
manager_user=system:serviceaccount:persona-system:persona-controller-manager
export LOCALCLUSTER_DIR=$state

log() { echo "demo: $*" >&2; }
k() { KUBECONFIG=$state/admin.kubeconfig "$kubectl" "$@"; }

manager_pid() {
  local pid
  pid=$(cat "$state/pids/manager.pid" 2>/dev/null) || return 1
  # Only trust the PID while it still runs our manager binary.
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$manager")" ] && echo "$pid"
}

stop_manager() {
  local pid i
  pid=$(manager_pid) || { rm -f "$state/pids/manager.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$state/pids/manager.pid"
}

# start_manager [EXTRA_FLAG...] starts the manager as a local process; extra
# flags are appended to the demo's.
start_manager() {
  if manager_pid >/dev/null; then
    log "manager already running"
    return
  fi
  mkdir -p "$state/logs" "$state/pids"
  # No webhook in the demo: the local apiserver could not reach it without a
  # serving certificate; rules are still compiled and checked by the controller.
  # The query endpoint (kubectl persona explain/preview) listens on loopback
  # only, with a serving certificate signed by the local cluster's CA.
  # With an event store (start_event_store), the event endpoint listens on
  # loopback too, plain HTTP.
  local ports port events=()
  ports=$(cd "$root" && go run ./hack/localclusterhelper ports 2)
  port=$(sed -n 1p <<<"$ports")
  echo "https://127.0.0.1:$port" >"$state/query-endpoint"
  rm -f "$state/events-endpoint"
  if [ -s "$state/events-dsn" ]; then
    events=(--events-database-dsn-file="$state/events-dsn" --events-bind-address="127.0.0.1:$(sed -n 2p <<<"$ports")")
    echo "http://127.0.0.1:$(sed -n 2p <<<"$ports")" >"$state/events-endpoint"
  fi
  KUBECONFIG=$state/manager.kubeconfig nohup "$manager" --enable-webhooks=false --leader-elect=false \
    --metrics-bind-address=0 --health-probe-bind-address=127.0.0.1:0 \
    --query-bind-address="127.0.0.1:$port" --query-cert-path="$state/pki/query" \
    --default-service-account=persona-tenant "${events[@]}" "$@" \
    >"$state/logs/manager.log" 2>&1 &
  echo $! >"$state/pids/manager.pid"
  log "manager started (log: $state/logs/manager.log; query endpoint https://127.0.0.1:$port)"
}

# The event endpoint (docs/events.md) needs a PostgreSQL event store: the demo
# runs a throwaway one in $state/postgres when PostgreSQL is installed, and
# leaves the events out otherwise (everything else is the same).
start_event_store() {
  # A second `up` keeps the running manager's store.
  if manager_pid >/dev/null && [ -s "$state/events-dsn" ]; then return 0; fi
  rm -f "$state/events-dsn"
  if ! "$root/hack/postgres.sh" available; then
    log "PostgreSQL is not installed: no product events in this demo (hack/postgres.sh install, as root, adds it)"
    return 0
  fi
  if ! command -v curl >/dev/null; then
    log "curl is not installed: no product events in this demo"
    return 0
  fi
  "$root/hack/postgres.sh" stop "$state/postgres" # a previous run's, whose password is gone
  local port
  port=$(cd "$root" && go run ./hack/localclusterhelper ports 1)
  (umask 077 && "$root/hack/postgres.sh" start "$state/postgres" "$port" >"$state/events-dsn.tmp")
  mv "$state/events-dsn.tmp" "$state/events-dsn"
  log "event store started (PostgreSQL on 127.0.0.1:$port, data in $state/postgres)"
}

stop_event_store() {
  if [ -e "$state/postgres" ]; then
    "$root/hack/postgres.sh" stop "$state/postgres"
  fi
  rm -f "$state/events-dsn" "$state/events-endpoint"
}

# apply_events applies the write key Secret, the Events DataSource and the
# persona built on it (config/demo/events), when the demo has an event store.
apply_events() {
  [ -s "$state/events-dsn" ] || return 0
  k -n "$ns" apply --server-side --force-conflicts -f "$root/config/demo/events/" >/dev/null
}

# events_batch writes one Segment /v1/batch body to $1 and prints how many
# calls it holds and how many users it makes workflow champions. Demo user
# u-000NN (NN = 1..40) ran a workflow on NN mod 6 distinct days of the last
# five, and once 20 days ago (outside the 14-day window), so the users with
# NN mod 6 >= 3 are champions. The messageIds carry the day: a second
# `make demo` the same day re-sends them and the endpoint de-duplicates.
events_batch() {
  local out=$1 now day body="" calls=0 champions=0 i d user ago=()
  now=$(date -u +%s)
  day=$(date -u +%F)
  # ago[d]: the time d days ago (one date process each; no process per call).
  for d in 1 2 3 4 5 20; do
    ago[d]=$(date -u -d "@$((now - d * 86400))" +%Y-%m-%dT%H:%M:%SZ)
  done
  call() {
    body+="${body:+,}{$1,\"messageId\":\"demo-$day-$2\"}"
    calls=$((calls + 1))
  }
  for ((i = 1; i <= 40; i++)); do
    printf -v user 'u-%05d' "$i"
    call "\"type\":\"identify\",\"userId\":\"$user\",\"traits\":{\"app_version\":\"2.$((i % 3))\"}" "$user-identify"
    call "\"type\":\"track\",\"userId\":\"$user\",\"event\":\"workflow_run\",\"timestamp\":\"${ago[20]}\"" "$user-old"
    for ((d = 1; d <= i % 6; d++)); do
      call "\"type\":\"track\",\"userId\":\"$user\",\"event\":\"workflow_run\",\"timestamp\":\"${ago[d]}\"" "$user-day$d"
    done
    [ $((i % 6)) -lt 3 ] || champions=$((champions + 1))
  done
  printf '{"batch":[%s]}\n' "$body" >"$out"
  echo "$calls $champions"
}

# events_tour sends a burst of product-usage events with curl, as an analytics
# SDK would (the write key from the demo's Secret as the basic-auth user), and
# shows the persona built on them taking its members.
events_tour() {
  [ -s "$state/events-endpoint" ] || return 0
  local endpoint key batch calls champions answer start members="" i ms first
  endpoint=$(cat "$state/events-endpoint")
  k -n "$ns" wait --for=condition=Ready datasource/demo-product-events --timeout=120s >/dev/null
  key=$(k -n "$ns" get secret demo-events-write-key -o jsonpath='{.data.writeKey}' | base64 -d)
  batch=$state/events-batch.json
  read -r calls champions < <(events_batch "$batch")
  echo
  echo "Product-usage events: $calls Segment calls (identify, track workflow_run) for 40 demo users, in one batch:"
  echo
  echo "\$ curl -u \"\$WRITE_KEY:\" -H 'Content-Type: application/json' --data-binary @$batch $endpoint/v1/batch"
  start=$(date +%s%N)
  # curl retries a 503 (the event store busy, or the key not registered yet).
  answer=$(curl -sS --fail-with-body --retry 10 --retry-delay 1 -u "$key:" -H 'Content-Type: application/json' \
    --data-binary "@$batch" "$endpoint/v1/batch")
  echo "$answer"
  for i in $(seq 1 150); do
    members=$(k -n "$ns" get persona workflow-champions -o jsonpath='{.status.members}')
    [ "${members:-0}" -ge "$champions" ] && break
    sleep 0.2
  done
  ms=$((($(date +%s%N) - start) / 1000000))
  if [ "${members:-0}" -ne "$champions" ]; then
    log "workflow-champions has ${members:-0} members, want $champions"
    return 1
  fi
  echo
  echo "\$ kubectl get datasource/demo-product-events persona/workflow-champions -n $ns"
  k -n "$ns" get datasource/demo-product-events persona/workflow-champions
  echo
  echo "workflow-champions (used workflows on at least 3 distinct days in the last 14 days) has $members"
  echo "members, $ms ms after the batch was sent (the stored events, aggregated per user):"
  show members workflow-champions --limit 3
  first=$(persona members workflow-champions --limit 1 -o json | sed -n 's/.*"userId": *"\([^"]*\)".*/\1/p' | head -n1)
  show explain workflow-champions "$first"
}

# persona runs the kubectl plugin as the demo's admin, against the manager's
# query endpoint, verifying its certificate with the cluster CA.
persona() {
  KUBECONFIG=$state/admin.kubeconfig PERSONA_QUERY_ENDPOINT=$(cat "$state/query-endpoint") \
    PERSONA_QUERY_CA=$state/pki/ca.crt "$plugin" -n "$ns" "$@"
}

# show prints a command as the user would type it, then runs it.
show() {
  echo
  echo "\$ kubectl persona -n $ns $*"
  persona "$@"
}

install() {
  # Server-side apply: the Playbook CRD and the data ConfigMaps are larger than
  # client-side apply's last-applied annotation may be.
  k apply --server-side --force-conflicts -f "$root/config/crd/bases" >/dev/null
  # A CRD created a moment ago may have no status yet, which kubectl wait
  # reports as an error instead of waiting: try again until it has one.
  local try
  for try in 1 2 3 4 5; do
    k wait --for=condition=Established crd --all --timeout=60s >/dev/null 2>&1 && break
    [ "$try" -lt 5 ] || k wait --for=condition=Established crd --all --timeout=60s >/dev/null
    sleep 1
  done
  k apply --server-side --force-conflicts -f "$root/config/rbac/role.yaml" >/dev/null
  k create clusterrolebinding persona-demo-manager --clusterrole=manager-role --user="$manager_user" \
    --dry-run=client -o yaml | k apply --server-side -f - >/dev/null
  k create namespace "$ns" --dry-run=client -o yaml | k apply --server-side -f - >/dev/null
  # The identity the manager acts as in the namespace (docs/security.md).
  k -n "$ns" apply --server-side --force-conflicts -f "$root/config/samples/tenant_serviceaccount.yaml" >/dev/null
  # Only kube-controller-manager makes the default ServiceAccount (a bare
  # control plane, LOCALCLUSTER_COMPONENTS="etcd kube-apiserver", runs no pod).
  [ -e "$state/pids/kube-controller-manager.pid" ] || return 0
  local i
  for i in $(seq 1 100); do
    k -n "$ns" get serviceaccount default >/dev/null 2>&1 && break
    sleep 0.2
  done
}

apply_data() {
  local data=$state/demo-data
  rm -rf "$data"
  (cd "$root" && go run ./hack/gendata -out "$data")
  k -n "$ns" apply --server-side --force-conflicts -f "$data/configmaps.yaml" >/dev/null
  k -n "$ns" apply --server-side --force-conflicts -f "$root/config/demo/" >/dev/null
  local f
  for f in "$root"/config/samples/personas_v1alpha1_persona_*.yaml "$root"/config/samples/personas_v1alpha1_playbook_*.yaml; do
    k -n "$ns" apply --server-side --force-conflicts -f "$f" >/dev/null
  done
}

report() {
  log "waiting for the personas to be Ready"
  k -n "$ns" wait --for=condition=Ready personas --all --timeout=180s >/dev/null
  echo
  echo "\$ kubectl get datasources,personas,playbooks -n $ns"
  k -n "$ns" get datasources,personas,playbooks
  local at_risk=at-risk-enterprise-decision-makers top count members arr
  top=$(k -n "$ns" get persona "$at_risk" -o jsonpath='{.status.insights[?(@.name=="top-feature-requests")].values[0].value}')
  count=$(k -n "$ns" get persona "$at_risk" -o jsonpath='{.status.insights[?(@.name=="top-feature-requests")].values[0].count}')
  members=$(k -n "$ns" get persona "$at_risk" -o jsonpath='{.status.members}')
  arr=$(k -n "$ns" get persona "$at_risk" -o jsonpath='{.status.insights[?(@.name=="arr-at-risk")].value}')
  echo
  echo "The most requested product enhancement among our highest-paying customers with a renewal"
  echo "in 90 days and a decision maker with negative NPS:"
  echo
  echo "    ${top:-<none>}  (requested by ${count:-0} of the ${members:-0} at-risk decision makers; ARR at risk: ${arr:-0})"
  echo
  echo "Asking the at-risk persona with the kubectl plugin (bin/kubectl-persona; make install-plugin puts it on PATH):"
  plugin_tour "$at_risk"
  events_tour
  echo
  cat <<EOF
Point kubectl at the demo cluster:
    export KUBECONFIG=$state/admin.kubeconfig
    kubectl get usersuccess -n $ns
    kubectl get jobs -n $ns -l personas.usersuccess.io/playbook    # playbook Jobs, completed by kwok
    export PERSONA_QUERY_ENDPOINT=\$(cat $state/query-endpoint) PERSONA_QUERY_CA=$state/pki/ca.crt    # in any new shell
    kubectl persona -n $ns explain $at_risk USER    # after make install-plugin
Manager log: $state/logs/manager.log
Stop everything: make demo-down
EOF
}

# plugin_tour asks the at-risk persona the plugin's four questions: its
# insights, its first members, why its first member is one, and what an edited
# rule (NPS threshold raised from 6 to 8) would change before it is applied.
plugin_tour() {
  local persona_name=$1 first edited
  show top "$persona_name"
  show members "$persona_name" --limit 5
  first=$(persona members "$persona_name" --limit 1 -o json | sed -n 's/.*"userId": *"\([^"]*\)".*/\1/p' | head -n1)
  [ -n "$first" ] || { log "the at-risk persona has no members"; return 1; }
  show explain "$persona_name" "$first"
  edited=$state/at-risk-edited.yaml
  sed 's/user.nps <= 6/user.nps <= 8/' "$root/config/samples/personas_v1alpha1_persona_at_risk.yaml" >"$edited"
  echo
  echo "\$ kubectl persona -n $ns preview -f $edited   # the sample with user.nps <= 8"
  persona preview -f "$edited"
}

# Sourced: functions only.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

case "${1:-}" in
  up)
    [ -x "$manager" ] || { log "missing $manager: run 'make build' (make demo does)"; exit 1; }
    [ -x "$plugin" ] || { log "missing $plugin: run 'make build-plugin' (make demo does)"; exit 1; }
    "$root/hack/localcluster.sh" up
    install
    apply_data
    start_event_store
    apply_events
    start_manager
    report
    ;;
  down)
    stop_manager
    stop_event_store
    "$root/hack/localcluster.sh" down
    ;;
  check-down)
    # Any process still running one of our binaries is left behind, whatever
    # its PID file says.
    left=$(pgrep -af "^($root/bin/manager|$root/bin/k8s/[^ ]*/(etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok))( |\$)" || true)
    left+=$(pgrep -af "postgres -D $state/postgres/data" || true)
    if [ -n "$left" ]; then
      log "processes left behind:"; echo "$left" >&2; exit 1
    fi
    log "no demo process is running"
    ;;
  *)
    echo "usage: $0 up|down|check-down" >&2
    exit 2
    ;;
esac
