#!/usr/bin/env bash
# Stop what ops/up.sh started: the servers listed in $UP_RECORD (default $REPO/var/started-by-up,
# see ops/up.sh for why a record), Kafka first, then Redis; then delete the record. Servers that
# up.sh only reused are left running. Idempotent: with no record, nothing is stopped.
#   ops/down.sh          stop what the record lists
#   ops/down.sh --all    stop every server that ops/kafka.sh / ops/redis.sh started (their pid files
#                        under KAFKA_DATA_DIR / REDIS_DIR), recorded or not; never a foreign one
set -euo pipefail
OPS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$OPS")"
UP_RECORD="${UP_RECORD:-$REPO/var/started-by-up}"
case "$UP_RECORD" in /*) ;; *) UP_RECORD="$PWD/$UP_RECORD" ;; esac

if [[ "${1:-}" == "--all" ]]; then
  bash "$OPS/kafka.sh" stop
  bash "$OPS/redis.sh" stop
  rm -f "$UP_RECORD"
  exit 0
fi
if [[ ! -s "$UP_RECORD" ]]; then
  echo "down: nothing recorded in $UP_RECORD as started by ops/up.sh; nothing stopped (ops/down.sh --all stops servers our scripts started)"
  rm -f "$UP_RECORD"
  exit 0
fi
rc=0
while IFS=$'\t' read -r name dir; do
  [[ "$name" == kafka ]] && { KAFKA_DATA_DIR="$dir" bash "$OPS/kafka.sh" stop || rc=1; }
done < "$UP_RECORD"
while IFS=$'\t' read -r name dir; do
  [[ "$name" == redis ]] && { REDIS_DIR="$dir" bash "$OPS/redis.sh" stop || rc=1; }
done < "$UP_RECORD"
(( rc == 0 )) && rm -f "$UP_RECORD"
exit "$rc"
