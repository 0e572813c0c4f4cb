#!/usr/bin/env bash
# Redis for development and tests, from Debian's redis-server.
#
#   ops/redis.sh start    reuse whatever answers PING on 127.0.0.1:$REDIS_PORT; else install
#                         redis-server with apt-get if missing and start our own, daemonized
#   ops/redis.sh stop     stop only the server this script started (pid file): SIGTERM, then SIGKILL
#   ops/redis.sh status   "running"/"stopped"; exit 0/1
#
# Environment (defaults):
#   REDIS_PORT           6379
#   REDIS_DIR            $REPO/var/redis     working dir, redis.pid, redis.log, the AOF (appendonlydir)
#   REDIS_MAXMEMORY      512mb               memory bound; policy volatile-lru: only keys with a TTL
#                                            (the prediction cache) are evicted, never the health,
#                                            deploy or experiment keys (they have none)
#   REDIS_APPENDONLY     yes                 AOF persistence (appendfsync everysec): health marks,
#                                            deploy targets and experiments survive a restart
#   REDIS_START_TIMEOUT  20 s
#   REDIS_STOP_TIMEOUT   10 s (grace between SIGTERM and SIGKILL)
#   OPS_RECORD_FILE      if set, "redis<TAB>$REDIS_DIR" is appended when this call started redis
#
# Note: installing Debian's package may start a system redis-server on 6379 through its init
# scripts. It is then reused, and `stop` never touches it (it has no pid file of ours).
set -euo pipefail

OPS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$OPS")"
REDIS_PORT="${REDIS_PORT:-6379}"
REDIS_DIR="${REDIS_DIR:-$REPO/var/redis}"
mkdir -p "$REDIS_DIR"
REDIS_DIR="$(cd "$REDIS_DIR" && pwd)"
REDIS_START_TIMEOUT="${REDIS_START_TIMEOUT:-20}"
REDIS_STOP_TIMEOUT="${REDIS_STOP_TIMEOUT:-10}"
REDIS_MAXMEMORY="${REDIS_MAXMEMORY:-512mb}"
REDIS_APPENDONLY="${REDIS_APPENDONLY:-yes}"
[[ "$REDIS_APPENDONLY" == yes || "$REDIS_APPENDONLY" == no ]] || { echo "redis: ERROR: REDIS_APPENDONLY must be yes or no, got '$REDIS_APPENDONLY'" >&2; exit 2; }
[[ "$REDIS_MAXMEMORY" =~ ^[0-9]+([kKmMgG][bB]?)?$ ]] || { echo "redis: ERROR: REDIS_MAXMEMORY must be a size such as 512mb, got '$REDIS_MAXMEMORY'" >&2; exit 2; }
HOST=127.0.0.1
PIDFILE="$REDIS_DIR/redis.pid"
LOGFILE="$REDIS_DIR/redis.log"

say() { echo "redis: $*"; }
die() { echo "redis: ERROR: $*" >&2; exit 1; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# Exit 0: answers +PONG; 2: nothing listens; 3: something else (or a Redis refusing us) listens.
ping() {
  local rc=0
  timeout 5 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 2
    printf "PING\r\n" >&3
    IFS= read -r -t 3 line <&3 || exit 3
    [[ "$line" == +PONG* ]] || exit 3
  ' "$HOST" "$REDIS_PORT" 2>/dev/null || rc=$?
  case "$rc" in 0) return 0 ;; 2) return 2 ;; *) return 3 ;; esac
}

our_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(tr -dc '0-9' < "$PIDFILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 'redis-server' || return 1
  echo "$pid"
}

wait_ping() {
  local deadline=$(( ${EPOCHREALTIME%.*} + REDIS_START_TIMEOUT ))
  until ping; do
    (( ${EPOCHREALTIME%.*} < deadline )) || return 1
    sleep 0.1
  done
}

do_start() {
  exec 9>"$REDIS_DIR/.start.lock"
  flock -w "$(( REDIS_START_TIMEOUT + 30 ))" 9 || die "another 'redis.sh start' holds $REDIS_DIR/.start.lock"
  local t0="$EPOCHREALTIME" rc pid
  rc=0; ping || rc=$?
  if (( rc == 0 )); then
    if pid="$(our_pid)"; then say "already running on $HOST:$REDIS_PORT (pid $pid); reusing"
    else say "a Redis not started by this script answers PING on $HOST:$REDIS_PORT; reusing"; fi
    return 0
  fi
  (( rc == 3 )) && die "$HOST:$REDIS_PORT accepts connections but does not answer PING with PONG; free the port or set REDIS_PORT"

  if ! command -v redis-server >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null || die "redis-server not found; install Debian package redis-server"
    say "installing redis-server (apt-get)"
    apt-get update -qq || true   # warnings about some source must not stop us
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after apt-get install"
    # the package's init script may have started a system redis on 6379: reuse it if so
    if ping; then say "the freshly installed system redis answers on $HOST:$REDIS_PORT; reusing"; return 0; fi
  fi

  rm -f "$PIDFILE"
  redis-server --port "$REDIS_PORT" --bind "$HOST" --daemonize yes \
    --pidfile "$PIDFILE" --logfile "$LOGFILE" --dir "$REDIS_DIR" \
    --save '' --appendonly "$REDIS_APPENDONLY" --appendfsync everysec \
    --maxmemory "$REDIS_MAXMEMORY" --maxmemory-policy volatile-lru 9>&- < /dev/null \
    || die "redis-server failed to start (log: $LOGFILE)"
  if ! wait_ping; then
    tail -n 30 "$LOGFILE" >&2 || true
    do_stop >/dev/null 2>&1 || true
    die "redis did not answer PING within $REDIS_START_TIMEOUT s"
  fi
  pid="$(our_pid || echo '?')"
  [[ -n "${OPS_RECORD_FILE:-}" ]] && printf 'redis\t%s\n' "$REDIS_DIR" >> "$OPS_RECORD_FILE"
  say "started Redis $(redis-server --version | awk '{print $3}' | sed 's/^v=//') on $HOST:$REDIS_PORT (pid $pid) in $(since "$t0") s; appendonly $REDIS_APPENDONLY, maxmemory $REDIS_MAXMEMORY volatile-lru; log $LOGFILE"
}

do_stop() {
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$PIDFILE"
    if ping; then say "not started by this script (no live $PIDFILE); the Redis on $HOST:$REDIS_PORT is left alone"
    else say "not running"; fi
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$(( ${EPOCHREALTIME%.*} + REDIS_STOP_TIMEOUT ))
  while kill -0 "$pid" 2>/dev/null && (( ${EPOCHREALTIME%.*} < deadline )); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid still alive after $REDIS_STOP_TIMEOUT s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  say "stopped (pid $pid)"
}

do_status() {
  local pid
  if ping; then
    if pid="$(our_pid)"; then say "running on $HOST:$REDIS_PORT (pid $pid)"
    else say "running on $HOST:$REDIS_PORT (not started by this script)"; fi
    return 0
  fi
  if pid="$(our_pid)"; then say "pid $pid alive but $HOST:$REDIS_PORT does not answer PING"; return 1; fi
  say "stopped"; return 1
}

case "${1:-}" in
  start)  do_start ;;
  stop)   do_stop ;;
  status) do_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
