#!/usr/bin/env bash
# A local Kubernetes control plane in which Jobs really complete: etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler built from module sources, plus kwok,
# which plays the kubelet for fake nodes (pods go Running, then Succeeded; see
# hack/kwok/stages.yaml). No containers, no root, no network beyond loopback; for
# end-to-end tests and `make demo`.
#
# Usage: hack/localcluster.sh up|down|status|env
#   up      build missing binaries, start everything, wait until usable (≈ 4 s warm)
#   down    stop every process by its PID file (TERM, then KILL) and drop etcd's data
#   status  what runs; exit 0 only when all of it does and the apiserver is ready
#   env     print `export KUBECONFIG=...` (admin); use: eval "$(hack/localcluster.sh env)"
#
# State, logs and PID files live in $LOCALCLUSTER_DIR (default: <repo>/.localcluster):
#   admin.kubeconfig    user admin, group system:masters
#   manager.kubeconfig  user system:serviceaccount:persona-system:persona-controller-manager
#                       with NO permissions: bind config/rbac/role.yaml to it yourself
#   logs/<component>.log, pids/<component>.pid, pki/, etcd/ (fresh on every up), lock
#
# Environment:
#   LOCALCLUSTER_DIR                state dir (see above)
#   LOCALCLUSTER_APISERVER_PORT     fixed ports; by default free ones are chosen.
#   LOCALCLUSTER_ETCD_PORT          A fixed port that is taken is an error, never a
#   LOCALCLUSTER_ETCD_PEER_PORT     silent change.
#   LOCALCLUSTER_NODES              number of fake nodes (default 1)
#   LOCALCLUSTER_NODE_PODS          pod capacity per fake node (default 1000)
#   LOCALCLUSTER_UP_TIMEOUT         seconds `up` waits for each readiness step (default 90)
#   LOCALCLUSTER_STOP_TIMEOUT       seconds `down` waits after TERM before KILL (default 10)
#   LOCALCLUSTER_KEEP_ON_FAILURE=1  leave processes running when `up` fails (debugging)
#   LOCALCLUSTER_COMPONENTS         what `up` starts (default: all five); "etcd kube-apiserver"
#                                   is a bare control plane (no Job ever runs; no fake node, no
#                                   default ServiceAccounts), for benchmarks of the operator
#   CONTROLPLANE_BIN                binary dir (as for hack/build-controlplane.sh)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state=${LOCALCLUSTER_DIR:-$root/.localcluster}
pki=$state/pki
up_timeout=${LOCALCLUSTER_UP_TIMEOUT:-90}
stop_timeout=${LOCALCLUSTER_STOP_TIMEOUT:-10}
nodes=${LOCALCLUSTER_NODES:-1}
node_pods=${LOCALCLUSTER_NODE_PODS:-1000}
# Start order; `down` stops in reverse, every one that runs whatever `up` started.
all_components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
read -r -a components <<<"${LOCALCLUSTER_COMPONENTS:-${all_components[*]}}"
[ "${components[*]:0:2}" = "etcd kube-apiserver" ] ||
  { echo "localcluster: LOCALCLUSTER_COMPONENTS must start with 'etcd kube-apiserver'" >&2; exit 2; }
# has COMPONENT: `up` starts it.
has() { [[ " ${components[*]} " == *" $1 "* ]]; }
# The operator's own identity; config/rbac/role.yaml is bound to it by the caller.
manager_user=system:serviceaccount:persona-system:persona-controller-manager
manager_groups=system:serviceaccounts,system:serviceaccounts:persona-system,system:authenticated

log() { echo "localcluster: $*" >&2; }
# now_ms / secs_since MS: sub-second timings (bash's SECONDS is whole seconds).
now_ms() { date +%s%3N; }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
die() { log "$*"; exit 1; }

pidfile() { echo "$state/pids/$1.pid"; }
logfile() { echo "$state/logs/$1.log"; }

# pid_of NAME prints the PID of component NAME if its process is alive. A PID is
# trusted only while /proc says it still runs our binary: after a reboot or a crash
# the number may belong to someone else's process, which we must never signal.
pid_of() {
  local f pid argv0 st
  f=$(pidfile "$1")
  [ -r "$f" ] || return 1
  pid=$(<"$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  # A zombie (dead child of this very script, not yet reaped) has empty cmdline
  # and state Z; kill -0 alone would call it alive.
  st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$st" != Z ] || return 1
  argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n1) || return 1
  [ "$(basename -- "$argv0")" = "$1" ] || return 1
  echo "$pid"
}

# port_in_use PORT: something accepts connections on 127.0.0.1:PORT. Uses bash's
# /dev/tcp so a fresh machine needs neither ss nor nc.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port VAR NAME: the port from env VAR if set (and it must be free), else a free
# random one below the kernel's ephemeral range (32768+), where outgoing connections
# (e.g. the apiserver's to etcd) could take it between our check and the bind.
picked=()
pick_port() {
  local var=$1 name=$2 p tries=0
  if [ -n "${!var:-}" ]; then
    p=${!var}
    if ! [[ "$p" =~ ^[0-9]+$ ]] || [ "$p" -lt 1 ] || [ "$p" -gt 65535 ]; then die "$var=$p is not a port number"; fi
    port_in_use "$p" && die "port $p ($name, from $var) is already in use on 127.0.0.1: free it, or unset $var to have a free port chosen"
    echo "$p"; return
  fi
  while :; do
    p=$((20000 + RANDOM % 12000))
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || die "found no free port for $name in 20000-31999"
    [[ " ${picked[*]} " == *" $p "* ]] && continue
    port_in_use "$p" || break
  done
  echo "$p"
}

kubectl_admin() { "$bindir/kubectl" --kubeconfig "$state/admin.kubeconfig" --request-timeout=5s "$@"; }

# random_token: 32 hex characters from the kernel's CSPRNG.
random_token() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# write_kubeconfig FILE USER TOKEN
write_kubeconfig() {
  local tmp=$1.tmp
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: localcluster
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $2
  user:
    token: $3
contexts:
- name: localcluster
  context:
    cluster: localcluster
    user: $2
current-context: localcluster
EOF
  chmod 600 "$tmp"
  mv "$tmp" "$1"
}

# start NAME ARGS...: run the component detached in its own session (setsid), so a
# Ctrl-C in the terminal that ran `make cluster-up` later, or the end of that shell,
# does not take the cluster down with it; only `down` does.
start() {
  local name=$1; shift
  : >"$(logfile "$name")"
  # 9>&-: the component must not inherit the state-dir lock (see lock()), or it
  # would hold it for its whole life and every later up/down would hang.
  setsid "$bindir/$name" "$@" </dev/null >>"$(logfile "$name")" 2>&1 9>&- &
  echo $! >"$(pidfile "$name")"
}

# wait_for WHAT CMD...: poll CMD until it succeeds; fail early, with the log, if a
# component has died meanwhile (a bad flag or a taken port shows up here at once).
wait_for() {
  local what=$1 deadline c; shift
  deadline=$((SECONDS + up_timeout))
  until "$@" >/dev/null 2>&1; do
    for c in "${components[@]}"; do
      if [ -e "$(pidfile "$c")" ] && ! pid_of "$c" >/dev/null; then
        log "$c exited while waiting for $what; last lines of $(logfile "$c"):"
        tail -n 20 "$(logfile "$c")" >&2
        return 1
      fi
    done
    [ "$SECONDS" -lt "$deadline" ] || { log "timed out after ${up_timeout}s waiting for $what (logs: $state/logs)"; return 1; }
    sleep 0.2
  done
}

node_ready() {
  local out
  # Ready, and untainted: the TaintNodesByCondition admission adds not-ready:NoSchedule
  # on create and the node lifecycle controller lifts it; pods created before that
  # would sit Pending.
  out=$(kubectl_admin get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}|{.spec.taints}')
  [ "$out" = "True|" ]
}

running_count() {
  local c n=0
  for c in "${components[@]}"; do pid_of "$c" >/dev/null && n=$((n + 1)); done
  echo "$n"
}

cmd_down() {
  local c pid pids=() deadline
  for ((i = ${#all_components[@]} - 1; i >= 0; i--)); do
    c=${all_components[i]}
    if pid=$(pid_of "$c"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$c:$pid")
    fi
  done
  deadline=$((SECONDS + stop_timeout))
  for entry in "${pids[@]}"; do
    c=${entry%%:*}
    while pid_of "$c" >/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        log "$c (pid ${entry#*:}) ignored TERM for ${stop_timeout}s: KILL"
        kill -KILL "${entry#*:}" 2>/dev/null || true
      fi
      sleep 0.1
    done
  done
  rm -f "$state"/pids/*.pid "$state/ports"
  # etcd's data never outlives a run: the next `up` starts from an empty cluster.
  rm -rf "$state/etcd"
  if [ ${#pids[@]} -gt 0 ]; then log "stopped ${#pids[@]} processes"; else log "not running"; fi
}

cmd_status() {
  local c pid rc=0
  for c in "${components[@]}"; do
    if pid=$(pid_of "$c"); then
      printf '%-24s running (pid %s)\n' "$c" "$pid"
    else
      printf '%-24s stopped\n' "$c"; rc=1
    fi
  done
  if [ -r "$state/ports" ]; then
    # shellcheck source=/dev/null
    . "$state/ports"
    printf '%-24s https://127.0.0.1:%s\n' apiserver "$apiserver_port"
  fi
  if [ "$rc" = 0 ]; then
    bindir=$("$root/hack/build-controlplane.sh" kubectl)
    if kubectl_admin get --raw /readyz >/dev/null 2>&1; then echo "apiserver ready"; else echo "apiserver NOT ready"; rc=1; fi
    printf 'export KUBECONFIG=%q\n' "$state/admin.kubeconfig"
  fi
  return "$rc"
}

cmd_env() {
  [ "$(running_count)" = "${#components[@]}" ] || log "warning: the cluster is not (fully) up; run: hack/localcluster.sh up"
  # %q: a state dir with spaces must survive eval.
  printf 'export KUBECONFIG=%q\n' "$state/admin.kubeconfig"
  printf '# operator (no RBAC until you bind it): %q\n' "$state/manager.kubeconfig"
}

cmd_up() {
  local t0 n i
  t0=$(now_ms)
  mkdir -p "$state/pids" "$state/logs"
  n=$(running_count)
  if [ "$n" = "${#components[@]}" ]; then
    log "already up"
    cmd_env
    return 0
  fi
  if [ "$n" != 0 ]; then
    log "found a partial cluster ($n of ${#components[@]} processes): stopping it first"
    cmd_down
  fi

  bindir=$("$root/hack/build-controlplane.sh" kubectl "${components[@]}")

  # Anything that fails from here on leaves no half-started cluster behind.
  trap 'rc=$?; if [ "$rc" != 0 ]; then log "up failed (logs: $state/logs)"; if [ "${LOCALCLUSTER_KEEP_ON_FAILURE:-}" != 1 ]; then cmd_down; fi; fi' EXIT

  # PKI (CA, serving cert, service-account key) is kept across runs, so exported
  # kubeconfigs keep working; a tiny stdlib-only Go program makes it, because a
  # fresh machine may have Go but no openssl.
  if [ ! -s "$pki/sa.pub" ] || [ ! -s "$pki/apiserver.crt" ]; then
    (cd "$root" && go run ./hack/localclusterhelper pki "$pki")
  fi
  if [ ! -s "$state/tokens.csv" ]; then
    # Static bearer tokens: the simplest authentication that gives each client its
    # own identity, so RBAC applies to the operator as it would in a real cluster.
    # Format: token,user,uid,"groups"
    (
      umask 077
      {
        echo "$(random_token),admin,admin,\"system:masters\""
        echo "$(random_token),system:kube-controller-manager,system:kube-controller-manager"
        echo "$(random_token),system:kube-scheduler,system:kube-scheduler"
        echo "$(random_token),$manager_user,$manager_user,\"$manager_groups\""
      } >"$state/tokens.csv.tmp"
    )
    mv "$state/tokens.csv.tmp" "$state/tokens.csv"
  fi
  token_of() { awk -F, -v u="$1" '$2 == u { print $1 }' "$state/tokens.csv"; }

  picked=()
  etcd_port=$(pick_port LOCALCLUSTER_ETCD_PORT "etcd client"); picked+=("$etcd_port")
  etcd_peer_port=$(pick_port LOCALCLUSTER_ETCD_PEER_PORT "etcd peer"); picked+=("$etcd_peer_port")
  apiserver_port=$(pick_port LOCALCLUSTER_APISERVER_PORT kube-apiserver); picked+=("$apiserver_port")
  printf 'apiserver_port=%s\netcd_port=%s\netcd_peer_port=%s\n' "$apiserver_port" "$etcd_port" "$etcd_peer_port" >"$state/ports"

  write_kubeconfig "$state/admin.kubeconfig" admin "$(token_of admin)"
  write_kubeconfig "$state/manager.kubeconfig" "$manager_user" "$(token_of "$manager_user")"
  write_kubeconfig "$state/controller-manager.kubeconfig" system:kube-controller-manager "$(token_of system:kube-controller-manager)"
  write_kubeconfig "$state/scheduler.kubeconfig" system:kube-scheduler "$(token_of system:kube-scheduler)"
  # kube-scheduler takes client QPS only from a config file (its flags for it are
  # deprecated); the default 50/100 makes bulk tests crawl.
  cat >"$state/scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $state/scheduler.kubeconfig
  qps: 500
  burst: 1000
leaderElection:
  leaderElect: false
EOF

  rm -rf "$state/etcd"
  # --unsafe-no-fsync: the data is thrown away on every up anyway, and fsync on a
  # shared disk is what makes a test etcd slow.
  start etcd \
    --name=localcluster \
    --data-dir="$state/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster="localcluster=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync \
    --log-level=warn

  # --endpoint-reconciler-type=none with a loopback --advertise-address: 1.37 refuses
  #   to publish a loopback IP as the `kubernetes` Service's endpoint otherwise.
  # --authorization-mode=Node,RBAC: the operator gets only what it is granted.
  # --max-*-inflight: room for ~100 Job creations per second plus the controllers.
  start kube-apiserver \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 \
    --secure-port="$apiserver_port" \
    --advertise-address=127.0.0.1 \
    --endpoint-reconciler-type=none \
    --tls-cert-file="$pki/apiserver.crt" \
    --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --token-auth-file="$state/tokens.csv" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --allow-privileged=true \
    --max-requests-inflight=1600 \
    --max-mutating-requests-inflight=800 \
    --profiling=false

  # etcd itself is not polled: the apiserver's readyz includes its etcd check.
  wait_for "kube-apiserver /readyz" kubectl_admin get --raw /readyz
  local t_api
  t_api=$(secs_since "$t0")

  # --use-service-account-credentials: each controller acts as its own kube-system
  #   ServiceAccount, as in a kubeadm cluster (so RBAC denials look real).
  # --service-account-private-key-file/--root-ca-file: the serviceaccount and token
  #   controllers; without a `default` ServiceAccount a namespace rejects every pod.
  # --secure-port=0: no health endpoint needed, and no port to collide.
  # --kube-api-qps/burst and more Job/GC workers: bulk tests would crawl at 20/30.
  if has kube-controller-manager; then
    start kube-controller-manager \
      --kubeconfig="$state/controller-manager.kubeconfig" \
      --use-service-account-credentials=true \
      --service-account-private-key-file="$pki/sa.key" \
      --root-ca-file="$pki/ca.crt" \
      --leader-elect=false \
      --secure-port=0 \
      --enable-garbage-collector=true \
      --kube-api-qps=500 \
      --kube-api-burst=1000 \
      --concurrent-job-syncs=10 \
      --concurrent-gc-syncs=20
  fi

  if has kube-scheduler; then
    start kube-scheduler \
      --config="$state/scheduler.yaml" \
      --secure-port=0
  fi

  # kwok has no built-in behaviour once given a config: stages.yaml is all of it.
  # It manages only nodes annotated kwok.x-k8s.io/node=fake, i.e. the ones made
  # below, and renews their Leases so the node lifecycle controller never taints
  # them. A /16 pod CIDR: kwok's default /24 runs out of pod IPs at ~250 pods.
  if has kwok; then
    start kwok \
      --kubeconfig="$state/admin.kubeconfig" \
      --config="$root/hack/kwok/stages.yaml" \
      --manage-all-nodes=false \
      --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
      --node-lease-duration-seconds=40 \
      --cidr=10.244.0.0/16 \
      --node-ip=127.0.0.1

    for ((i = 0; i < nodes; i++)); do
      kubectl_admin apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
spec: {}
status:
  allocatable: {cpu: "1000", memory: 1Ti, pods: "$node_pods"}
  capacity: {cpu: "1000", memory: 1Ti, pods: "$node_pods"}
EOF
    done
    for ((i = 0; i < nodes; i++)); do
      wait_for "node kwok-node-$i Ready and untainted" node_ready "kwok-node-$i"
    done
  fi
  if has kube-controller-manager; then
    wait_for "ServiceAccount default/default" kubectl_admin -n default get serviceaccount default
  fi

  trap - EXIT
  log "up in $(secs_since "$t0")s (apiserver ready after ${t_api}s): https://127.0.0.1:$apiserver_port, ${components[*]}, logs in $state/logs"
  cmd_env
}

# lock: `up` and `down` take turns, so test packages that each run `up` at once
# share one cluster instead of racing to start two on the same state dir.
lock() {
  mkdir -p "$state"
  exec 9>"$state/lock"
  if command -v flock >/dev/null; then flock 9; fi
}

case "${1:-}" in
up) lock; cmd_up ;;
down) lock; cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
*) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
