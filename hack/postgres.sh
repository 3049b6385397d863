#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and benchmarks: a real server, never a mock.
#
#   hack/postgres.sh install          install Debian's postgresql if no server is found
#   hack/postgres.sh available        exit 0 when a server is installed (installs nothing)
#   hack/postgres.sh start DIR PORT [OWNER_PID]
#                                     initdb a cluster in DIR, start it on 127.0.0.1:PORT,
#                                     print the superuser DSN; with OWNER_PID, stop it
#                                     when that process exits
#   hack/postgres.sh stop DIR         stop it and remove DIR
#
# Servers run with fsync, synchronous_commit and full_page_writes off (fast,
# not crash-safe) unless POSTGRES_DURABLE=1 is set.
#
# Password (scram-sha-256) authentication is enforced on TCP, so wrong-password tests
# are real. As root, the server runs as the `postgres` system user.
set -euo pipefail

find_bin() {
  local d
  # Newest major version first.
  for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -Vr); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && { echo "$d"; return 0; }
  done
  return 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    # runuser keeps stdout/stderr and needs no password.
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cmd=${1:-}
case "$cmd" in
available)
  find_bin >/dev/null
  ;;
install)
  if find_bin >/dev/null; then exit 0; fi
  [ "$(id -u)" = 0 ] || { echo "PostgreSQL is not installed; run as root or install the postgresql package" >&2; exit 1; }
  # Test packages run in parallel and each installs: one apt-get at a time.
  exec 9>/var/lock/persona-postgres-install.lock
  flock 9
  if find_bin >/dev/null; then exit 0; fi
  echo "installing PostgreSQL from Debian packages..." >&2
  apt-get update -qq >&2
  # policy-rc.d keeps the package from starting its default cluster: we run our own.
  # Docker images often ship one already; only a file we created is removed again.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  # Without systemd or policy-rc.d the package may still start its cluster: stop it,
  # it would only hold memory (it listens on 5432, never on our ports).
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _ status _; do
      if [ "$status" = online ]; then pg_ctlcluster "$ver" "$name" stop >&2 || true; fi
    done
  fi
  find_bin >/dev/null
  ;;
start)
  dir=${2:?usage: postgres.sh start DIR PORT [OWNER_PID]}
  port=${3:?usage: postgres.sh start DIR PORT [OWNER_PID]}
  bin=$(find_bin) || { echo "PostgreSQL is not installed: run hack/postgres.sh install" >&2; exit 1; }
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "running as root needs the postgres system user (created by Debian's postgresql package)" >&2
    exit 1
  fi
  password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  mkdir -p "$dir/data" "$dir/run"
  (umask 077 && printf '%s\n' "$password" > "$dir/pwfile")
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$dir"
    # The server user must reach DIR: open the parent for traversal (temp dirs are 0700).
    chmod o+x "$(dirname "$dir")"
  fi
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  rm -f "$dir/pwfile"
  # Tests trade durability for speed; POSTGRES_DURABLE=1 keeps PostgreSQL's
  # defaults (fsync, synchronous_commit, full_page_writes on), for benchmarks
  # of what waits for a durable commit.
  fast="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ -z "${POSTGRES_DURABLE:-}" ] || fast=""
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k '$dir/run' $fast" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  if [ -n "${4:-}" ]; then
    # A test binary killed by its -timeout runs no cleanup: a watchdog stops the
    # server once the owner is gone. Its output goes nowhere, so the caller's
    # pipe on our stdout still closes when we exit.
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 2; done; exec "$0" stop "$2"' \
      "$0" "$4" "$dir" </dev/null >/dev/null 2>&1 &
  fi
  echo "postgres://postgres:$password@127.0.0.1:$port/postgres?sslmode=disable"
  ;;
stop)
  dir=${2:?usage: postgres.sh stop DIR}
  if [ -f "$dir/data/postmaster.pid" ]; then
    bin=$(find_bin)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 install | available | start DIR PORT [OWNER_PID] | stop DIR" >&2
  exit 2
  ;;
esac
