#!/usr/bin/env bash
# A 3-node Redis Cluster (3 primaries, no replicas) on 127.0.0.1 for development and tests.
#
#   ops/redis-cluster.sh start    start the nodes (ports REDIS_CLUSTER_PORT..+2) and create the cluster
#                                 once; reuse nodes this script already runs
#   ops/redis-cluster.sh stop     stop the nodes this script started (pid files), nothing else, and
#                                 delete their data (the cluster is a throwaway for tests)
#   ops/redis-cluster.sh status   cluster_state of the first node; exit 0 when "ok"
#
# Environment (defaults):
#   REDIS_CLUSTER_PORT   7000        first node's port (the others are +1, +2)
#   REDIS_CLUSTER_DIR    $REPO/var/redis-cluster   per-node dirs, pid files, logs, nodes.conf
# Clients: SE_REDIS_URL=redis+cluster://127.0.0.1:$REDIS_CLUSTER_PORT/0
set -euo pipefail
OPS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$OPS")"
# shellcheck source=ops/redis-nodes.sh
source "$OPS/redis-nodes.sh"
PORT0="${REDIS_CLUSTER_PORT:-7000}"
DIR="${REDIS_CLUSTER_DIR:-$REPO/var/redis-cluster}"
HOST=127.0.0.1
PORTS=("$PORT0" "$((PORT0 + 1))" "$((PORT0 + 2))")
say() { echo "redis-cluster: $*"; }
die() { echo "redis-cluster: ERROR: $*" >&2; exit 1; }

alive() {  # $1 = port: our node answers?
  local pidf="$DIR/$1/redis.pid"
  [[ -s "$pidf" ]] && kill -0 "$(cat "$pidf")" 2>/dev/null && redis-cli -h "$HOST" -p "$1" ping >/dev/null 2>&1
}

do_start() {
  command -v redis-server >/dev/null || die "redis-server not found (Debian package redis-server)"
  mkdir -p "$DIR"
  exec 9>"$DIR/.start.lock"; flock -w 60 9 || die "another start holds $DIR/.start.lock"
  local p
  for p in "${PORTS[@]}"; do
    if alive "$p"; then continue; fi
    if redis-cli -h "$HOST" -p "$p" ping >/dev/null 2>&1; then die "port $p answers but is not a node of ours; set REDIS_CLUSTER_PORT"; fi
    mkdir -p "$DIR/$p"
    redis-server --port "$p" --bind "$HOST" --daemonize yes --cluster-enabled yes \
      --cluster-config-file "$DIR/$p/nodes.conf" --cluster-node-timeout 5000 \
      --pidfile "$DIR/$p/redis.pid" --logfile "$DIR/$p/redis.log" --dir "$DIR/$p" \
      --save '' --appendonly no 9>&- </dev/null || die "node $p failed to start (log $DIR/$p/redis.log)"
    for _ in $(seq 1 50); do redis-cli -h "$HOST" -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  if ! redis-cli -h "$HOST" -p "$PORT0" cluster info | grep -q 'cluster_state:ok'; then
    if [[ "$(redis-cli -h "$HOST" -p "$PORT0" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')" == 1 ]]; then
      redis-cli --cluster create "$HOST:${PORTS[0]}" "$HOST:${PORTS[1]}" "$HOST:${PORTS[2]}" --cluster-yes >/dev/null \
        || die "cluster create failed"
    fi
    for _ in $(seq 1 100); do redis-cli -h "$HOST" -p "$PORT0" cluster info | grep -q 'cluster_state:ok' && break; sleep 0.1; done
  fi
  redis-cli -h "$HOST" -p "$PORT0" cluster info | grep -q 'cluster_state:ok' || die "cluster not ok"
  say "3-node cluster ok on $HOST:${PORTS[0]}-${PORTS[2]} (data $DIR)"
}

do_stop() {
  stop_redis_nodes "$DIR" "${PORTS[@]}"
  say "stopped"
}

case "${1:-}" in
  start) do_start ;;
  stop) do_stop ;;
  status) redis-cli -h "$HOST" -p "$PORT0" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && { say "ok"; exit 0; } || { say "not running"; exit 1; } ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
