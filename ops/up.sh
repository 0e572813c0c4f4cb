#!/usr/bin/env bash
# Start Redis, then Kafka (ops/redis.sh, ops/kafka.sh), reusing whatever already answers; prints
# one summary line. Idempotent.
#
# Who stops what: each start script appends "<name><TAB><its data dir>" to $UP_RECORD only when
# that call really launched the server. The record therefore lists exactly the servers that
# ops/up.sh started (and that ops/down.sh may stop); a server that was already up, ours or
# someone else's, is never recorded. A second up.sh that reuses everything adds nothing.
#   UP_RECORD   default $REPO/var/started-by-up
# A caller that must stop only what IT started (e.g. `make test` while a developer's servers are
# already up) uses its own record:
#   UP_RECORD=var/started-by-make-test ops/up.sh ... UP_RECORD=var/started-by-make-test ops/down.sh
# Other settings pass through: KAFKA_DATA_DIR, KAFKA_LOG_DIR, KAFKA_PORT, KAFKA_CONTROLLER_PORT,
# KAFKA_START_TIMEOUT, REDIS_PORT, REDIS_DIR (see the two scripts).
set -euo pipefail
OPS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$OPS")"
UP_RECORD="${UP_RECORD:-$REPO/var/started-by-up}"
case "$UP_RECORD" in /*) ;; *) UP_RECORD="$PWD/$UP_RECORD" ;; esac
mkdir -p "$(dirname "$UP_RECORD")"
touch "$UP_RECORD"
t0="$EPOCHREALTIME"

before="$(wc -l < "$UP_RECORD")"
OPS_RECORD_FILE="$UP_RECORD" bash "$OPS/redis.sh" start
redis_state=reused; (( $(wc -l < "$UP_RECORD") > before )) && redis_state=started

before="$(wc -l < "$UP_RECORD")"
OPS_RECORD_FILE="$UP_RECORD" bash "$OPS/kafka.sh" start
kafka_state=reused; (( $(wc -l < "$UP_RECORD") > before )) && kafka_state=started

# drop duplicate lines (a server stopped by hand and started again by up.sh)
sort -u -o "$UP_RECORD" "$UP_RECORD"
secs="$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
echo "up: redis 127.0.0.1:${REDIS_PORT:-6379} ($redis_state), kafka 127.0.0.1:${KAFKA_PORT:-9092} ($kafka_state) in $secs s; started-by-up record: $UP_RECORD"
