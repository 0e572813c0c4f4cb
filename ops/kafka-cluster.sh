#!/usr/bin/env bash
# A 3-node Kafka cluster (KRaft, each node broker + controller) on 127.0.0.1, replication factor 3
# and min.insync.replicas 2, for fault tests: one node can die and producers with acks=all keep
# writing. Each node is an ops/kafka.sh instance with its own data dir and ports.
#
#   ops/kafka-cluster.sh start        start the three nodes (together: a static quorum needs 2 of 3
#                                     to elect a controller) and wait until each serves
#   ops/kafka-cluster.sh stop         stop the nodes this script started and delete their data
#   ops/kafka-cluster.sh status       one line per node; exit 0 when all three answer
#   ops/kafka-cluster.sh kill N       SIGKILL node N (1..3): a crashed broker, nothing flushed
#   ops/kafka-cluster.sh start-node N start node N again (it rejoins and catches up)
#   ops/kafka-cluster.sh bootstrap    print the bootstrap list (all three client listeners)
#
# Environment (defaults):
#   KAFKA_CLUSTER_PORT  KAFKA_PORT+100, else 9192   node N's client port is +10*(N-1); its
#                                                   controller, SASL and TLS listeners are +1, +2, +3
#   KAFKA_CLUSTER_DIR   $REPO/var/kafka-cluster     node1/ node2/ node3/, cluster.id
set -euo pipefail
OPS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$OPS")"
BASE="${KAFKA_CLUSTER_PORT:-$(( ${KAFKA_PORT:-9092} + 100 ))}"
DIR="${KAFKA_CLUSTER_DIR:-$REPO/var/kafka-cluster}"
HOST=127.0.0.1
NODES=(1 2 3)
say() { echo "kafka-cluster: $*"; }
die() { echo "kafka-cluster: ERROR: $*" >&2; exit 1; }

port_of() { echo $(( BASE + 10 * ($1 - 1) )); }
voters() { local n out=(); for n in "${NODES[@]}"; do out+=("$n@$HOST:$(( $(port_of "$n") + 1 ))"); done; (IFS=,; echo "${out[*]}"); }
bootstrap() { local n out=(); for n in "${NODES[@]}"; do out+=("$HOST:$(port_of "$n")"); done; (IFS=,; echo "${out[*]}"); }

ensure_cluster_id() {  # one id for all three nodes, written before any node formats its storage
  mkdir -p "$DIR"
  [[ -s "$DIR/cluster.id" ]] || python3 -c 'import base64,os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-"): print(s); break' > "$DIR/cluster.id"
}

node() {  # $1 = node, rest = ops/kafka.sh arguments
  local n=$1; shift
  ensure_cluster_id
  local p; p="$(port_of "$n")"
  KAFKA_PORT="$p" KAFKA_CONTROLLER_PORT=$(( p + 1 )) KAFKA_SASL_PORT=$(( p + 2 )) KAFKA_TLS_PORT=$(( p + 3 )) \
    KAFKA_DATA_DIR="$DIR/node$n" KAFKA_NODE_ID="$n" KAFKA_QUORUM_VOTERS="$(voters)" \
    KAFKA_CLUSTER_ID="$(cat "$DIR/cluster.id")" KAFKA_REPLICATION_FACTOR=3 KAFKA_MIN_ISR=2 \
    KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}" OPS_RECORD_FILE= \
    bash "$OPS/kafka.sh" "$@"
}

start_all() {
  local n pids=() rc=0
  for n in "${NODES[@]}"; do node "$n" start > "$DIR.node$n.start.log" 2>&1 & pids+=($!); done
  for n in "${!pids[@]}"; do wait "${pids[$n]}" || rc=1; done
  for n in "${NODES[@]}"; do sed "s/^/node$n: /" "$DIR.node$n.start.log"; rm -f "$DIR.node$n.start.log"; done
  (( rc == 0 )) || die "a node failed to start (logs in $DIR/node*/logs)"
  say "3 nodes up, bootstrap $(bootstrap) (replication factor 3, min.insync.replicas 2)"
}

check_node() { [[ "${1:-}" =~ ^[123]$ ]] || die "node must be 1, 2 or 3, got '${1:-}'"; }

case "${1:-}" in
  start) ensure_cluster_id; start_all ;;
  stop)
    for n in "${NODES[@]}"; do node "$n" stop | sed "s/^/node$n: /"; done
    rm -rf "$DIR"; say "stopped" ;;
  status)
    rc=0; for n in "${NODES[@]}"; do echo "node$n $HOST:$(port_of "$n") $(node "$n" status 2>/dev/null || { rc=1; true; })"; done; exit $rc ;;
  kill)
    check_node "${2:-}"; pidf="$DIR/node$2/kafka.pid"
    [[ -s "$pidf" ]] || die "node $2 has no pid file ($pidf)"
    kill -KILL "$(tr -dc '0-9' < "$pidf")" && rm -f "$pidf" && say "node $2 killed (SIGKILL)" ;;
  start-node) check_node "${2:-}"; node "$2" start | sed "s/^/node$2: /" ;;
  bootstrap) bootstrap ;;
  *) echo "usage: $0 start|stop|status|kill N|start-node N|bootstrap" >&2; exit 2 ;;
esac
