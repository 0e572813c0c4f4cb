#!/usr/bin/env bash
# A Redis primary, one replica and one Sentinel (quorum 1) on 127.0.0.1, for development and tests
# of redis+sentinel:// URLs and of a failover under a running worker.
#
#   ops/redis-sentinel.sh start      start the three processes (reuse ours when they run) and wait
#                                    until the sentinel knows the primary
#   ops/redis-sentinel.sh failover   ask the sentinel to promote the replica; wait until it has
#   ops/redis-sentinel.sh primary    print host:port of the current primary
#   ops/redis-sentinel.sh stop       stop the processes this script started (pid files) and delete
#                                    their data (a throwaway for tests)
#
# Environment (defaults):
#   REDIS_SENTINEL_PORT  7100     the primary's port; the replica is +1, the sentinel +2
#   REDIS_SENTINEL_DIR   $REPO/var/redis-sentinel
#   REDIS_SENTINEL_NAME  mymaster service name
# Clients: SE_REDIS_URL=redis+sentinel://127.0.0.1:$((REDIS_SENTINEL_PORT + 2))/mymaster/0
set -euo pipefail
OPS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$OPS")"
# shellcheck source=ops/redis-nodes.sh
source "$OPS/redis-nodes.sh"
P0="${REDIS_SENTINEL_PORT:-7100}"
DIR="${REDIS_SENTINEL_DIR:-$REPO/var/redis-sentinel}"
NAME="${REDIS_SENTINEL_NAME:-mymaster}"
HOST=127.0.0.1
PRIMARY=$P0 REPLICA=$((P0 + 1)) SENTINEL=$((P0 + 2))
say() { echo "redis-sentinel: $*"; }
die() { echo "redis-sentinel: ERROR: $*" >&2; exit 1; }

alive() {  # $1 = port: our process answers?
  local pidf="$DIR/$1/redis.pid"
  [[ -s "$pidf" ]] && kill -0 "$(cat "$pidf")" 2>/dev/null && redis-cli -h "$HOST" -p "$1" ping >/dev/null 2>&1
}

wait_ping() { for _ in $(seq 1 50); do redis-cli -h "$HOST" -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

current_primary() { redis-cli -h "$HOST" -p "$SENTINEL" sentinel get-master-addr-by-name "$NAME" 2>/dev/null | paste -sd: -; }

start_server() {  # $1 = port, rest = extra redis-server arguments
  local p=$1; shift
  if alive "$p"; then return 0; fi
  if redis-cli -h "$HOST" -p "$p" ping >/dev/null 2>&1; then die "port $p answers but is not ours; set REDIS_SENTINEL_PORT"; fi
  mkdir -p "$DIR/$p"
  redis-server --port "$p" --bind "$HOST" --daemonize yes --pidfile "$DIR/$p/redis.pid" \
    --logfile "$DIR/$p/redis.log" --dir "$DIR/$p" --save '' --appendonly no "$@" 9>&- </dev/null \
    || die "redis on $p failed to start (log $DIR/$p/redis.log)"
  wait_ping "$p" || die "redis on $p does not answer (log $DIR/$p/redis.log)"
}

do_start() {
  command -v redis-server >/dev/null || die "redis-server not found (Debian package redis-server)"
  mkdir -p "$DIR"
  exec 9>"$DIR/.start.lock"; flock -w 60 9 || die "another start holds $DIR/.start.lock"
  start_server "$PRIMARY"
  start_server "$REPLICA" --replicaof "$HOST" "$PRIMARY"
  if ! alive "$SENTINEL"; then
    mkdir -p "$DIR/$SENTINEL"
    # sentinel rewrites its config file (it records what it learns), so it gets its own copy
    cat > "$DIR/$SENTINEL/sentinel.conf" <<CONF
port $SENTINEL
bind $HOST
daemonize yes
pidfile $DIR/$SENTINEL/redis.pid
logfile $DIR/$SENTINEL/redis.log
dir $DIR/$SENTINEL
sentinel monitor $NAME $HOST $PRIMARY 1
sentinel down-after-milliseconds $NAME 2000
sentinel failover-timeout $NAME 10000
CONF
    redis-server "$DIR/$SENTINEL/sentinel.conf" --sentinel 9>&- </dev/null || die "sentinel failed to start (log $DIR/$SENTINEL/redis.log)"
    wait_ping "$SENTINEL" || die "sentinel does not answer (log $DIR/$SENTINEL/redis.log)"
  fi
  for _ in $(seq 1 100); do
    [[ -n "$(current_primary)" ]] && redis-cli -h "$HOST" -p "$REPLICA" info replication | grep -q 'master_link_status:up' && break
    sleep 0.1
  done
  [[ -n "$(current_primary)" ]] || die "sentinel does not know $NAME"
  say "primary $(current_primary), replica, sentinel $HOST:$SENTINEL (service $NAME, data $DIR)"
}

do_failover() {
  local before; before="$(current_primary)"
  [[ -n "$before" ]] || die "sentinel on $SENTINEL does not answer"
  redis-cli -h "$HOST" -p "$SENTINEL" sentinel failover "$NAME" >/dev/null || die "failover refused"
  for _ in $(seq 1 200); do
    local now; now="$(current_primary)"
    if [[ -n "$now" && "$now" != "$before" ]] && redis-cli -h "${now%:*}" -p "${now##*:}" info replication | grep -q 'role:master'; then
      say "failover: $before -> $now"; return 0
    fi
    sleep 0.1
  done
  die "no failover within 20 s (primary still $before)"
}

do_stop() {
  stop_redis_nodes "$DIR" "$PRIMARY" "$REPLICA" "$SENTINEL"
  say "stopped"
}

case "${1:-}" in
  start) do_start ;;
  failover) do_failover ;;
  primary) p="$(current_primary)"; [[ -n "$p" ]] && echo "$p" || die "sentinel on $SENTINEL does not answer" ;;
  stop) do_stop ;;
  *) echo "usage: $0 start|failover|primary|stop" >&2; exit 2 ;;
esac
