# Sourced by ops/redis-cluster.sh and ops/redis-sentinel.sh: stop the throwaway redis-server
# processes they started, each recorded in $1/<port>/redis.pid, and delete their folder.
#   stop_redis_nodes DIR PORT...
stop_redis_nodes() {
  local dir=$1 p pid; shift
  for p in "$@"; do
    [[ -s "$dir/$p/redis.pid" ]] || continue
    pid="$(cat "$dir/$p/redis.pid")"
    # only a redis-server of ours: a recycled pid may be anything else by now
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q redis-server; then
      kill -TERM "$pid"; for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$dir/$p/redis.pid"
  done
  rm -rf "$dir"
}
