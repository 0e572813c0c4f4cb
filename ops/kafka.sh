#!/usr/bin/env bash
# Single-node Apache Kafka 4.x (KRaft, broker+controller) from Maven Central jars and the machine's JDK.
#
#   ops/kafka.sh start     reuse a broker answering on 127.0.0.1:$KAFKA_PORT, else resolve jars (once),
#                          format storage (once), launch in the background, wait until it serves
#   ops/kafka.sh stop      stop the broker this script started (pid file): SIGTERM, grace, SIGKILL
#   ops/kafka.sh status    "running"/"stopped"; exit 0/1
#   ops/kafka.sh logs [-f] tail server.log (LINES=100)
#
# Environment (defaults):
#   KAFKA_DATA_DIR        $REPO/var/kafka        storage (data/), server.properties, kafka.pid
#   KAFKA_LOG_DIR         $KAFKA_DATA_DIR/logs   server.log, stdout.log, format.log, gc log, mvn.log
#   KAFKA_PORT            9092                   PLAINTEXT listener on 127.0.0.1
#   KAFKA_CONTROLLER_PORT KAFKA_PORT+1           KRaft controller listener on 127.0.0.1
#   KAFKA_SASL_PORT       KAFKA_PORT+2           SASL_PLAINTEXT (PLAIN) listener on 127.0.0.1; user and
#                                                generated password in $KAFKA_DATA_DIR/sasl.env
#   KAFKA_TLS_PORT        KAFKA_PORT+3           SASL_SSL listener (same credentials); clients trust
#                                                $KAFKA_DATA_DIR/tls/ca.pem (generated once, openssl)
#   KAFKA_NODE_ID         1                      node.id (ops/kafka-cluster.sh runs nodes 1..3)
#   KAFKA_QUORUM_VOTERS   1@127.0.0.1:CONTROLLER static controller quorum
#   KAFKA_CLUSTER_ID      random, once           cluster id used to format the storage (same on every node)
#   KAFKA_REPLICATION_FACTOR 1 / KAFKA_MIN_ISR 1 replication of data and internal topics
#   KAFKA_START_TIMEOUT   90                     seconds to wait for "Kafka Server started"
#   KAFKA_STOP_TIMEOUT    30                     grace seconds between SIGTERM and SIGKILL
#   KAFKA_HEAP_OPTS       -Xms256m -Xmx1g
#   KAFKA_OPTS            extra JVM options
#   KAFKA_EXTRA_CONFIG    extra server.properties lines (key=value, one per line), appended
#                         after the template so they win (e.g. a broker without the consumer
#                         group protocol: group.coordinator.rebalance.protocols=classic)
#   KAFKA_LIB_DIR         $REPO/ops/kafka/lib    jars (gitignored)
#   OPS_RECORD_FILE       if set, "kafka<TAB>$KAFKA_DATA_DIR" is appended when this call launched
#                         the broker (ops/up.sh uses it to know what it may stop)
set -euo pipefail

OPS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$OPS")"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$REPO/var/kafka}"
mkdir -p "$KAFKA_DATA_DIR"
KAFKA_DATA_DIR="$(cd "$KAFKA_DATA_DIR" && pwd)"
KAFKA_LOG_DIR="${KAFKA_LOG_DIR:-$KAFKA_DATA_DIR/logs}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$(( KAFKA_PORT + 1 ))}"
KAFKA_SASL_PORT="${KAFKA_SASL_PORT:-$(( KAFKA_PORT + 2 ))}"
KAFKA_TLS_PORT="${KAFKA_TLS_PORT:-$(( KAFKA_PORT + 3 ))}"
KAFKA_NODE_ID="${KAFKA_NODE_ID:-1}"
KAFKA_QUORUM_VOTERS="${KAFKA_QUORUM_VOTERS:-1@127.0.0.1:$KAFKA_CONTROLLER_PORT}"
KAFKA_REPLICATION_FACTOR="${KAFKA_REPLICATION_FACTOR:-1}"
KAFKA_MIN_ISR="${KAFKA_MIN_ISR:-1}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
KAFKA_OPTS="${KAFKA_OPTS:-}"
KAFKA_LIB_DIR="${KAFKA_LIB_DIR:-$OPS/kafka/lib}"
HOST=127.0.0.1

CONF_DIR="$OPS/kafka"
PIDFILE="$KAFKA_DATA_DIR/kafka.pid"
PROPS="$KAFKA_DATA_DIR/server.properties"
SERVER_LOG="$KAFKA_LOG_DIR/server.log"
STDOUT_LOG="$KAFKA_LOG_DIR/stdout.log"
READY_MSG="Kafka Server started"

say() { echo "kafka: $*"; }
die() { echo "kafka: ERROR: $*" >&2; exit 1; }
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# Exit 0: a Kafka broker answers ApiVersions on the port; 2: nothing listens; 3: something that
# is not (yet) a working Kafka broker accepts TCP connections there.
probe() {
  python3 - "$HOST" "$1" <<'PY'
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    s = socket.create_connection((host, port), timeout=2)
except OSError:
    sys.exit(2)
try:
    s.settimeout(3)
    cid = b"ops-kafka-sh"
    body = struct.pack(">hhih", 18, 0, 7321, len(cid)) + cid   # ApiVersions v0
    s.sendall(struct.pack(">i", len(body)) + body)
    def recv(n):
        b = b""
        while len(b) < n:
            chunk = s.recv(n - len(b))
            if not chunk:
                raise EOFError
            b += chunk
        return b
    (size,) = struct.unpack(">i", recv(4))
    corr, err = struct.unpack(">ih", recv(min(size, 6)))
    sys.exit(0 if corr == 7321 and err == 0 else 3)
except Exception:
    sys.exit(3)
PY
}

# Prints the pid of the broker this script started, if that process is alive and is kafka.Kafka.
our_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(tr -dc '0-9' < "$PIDFILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

version() {
  local v=""
  [[ -f "$SERVER_LOG" ]] && v="$(grep -o 'Kafka version: [^ ]*' "$SERVER_LOG" | tail -n 1 | cut -d' ' -f3 || true)"
  echo "${v:-unknown}"
}

ensure_tool() {  # command, Debian package
  command -v "$1" >/dev/null 2>&1 && return 0
  [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null || die "'$1' not found; install Debian package $2"
  say "installing $2 (apt-get)" >&2
  apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
  command -v "$1" >/dev/null 2>&1 || die "'$1' still missing after installing $2"
}

java_bin() {
  local j
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then j="$JAVA_HOME/bin/java"
  else ensure_tool java openjdk-17-jre-headless; j="$(command -v java)"; fi
  local major
  major="$("$j" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)"
  [[ -n "$major" && "$major" -ge 17 ]] || die "Kafka 4.x needs Java 17+, $j is '${major:-?}'"
  echo "$j"
}

# Jars: resolved once; re-resolved only when ops/kafka/pom.xml changed (stamp = its sha256).
ensure_jars() {
  local stamp want
  stamp="$KAFKA_LIB_DIR/.pom.sha256"
  want="$(sha256sum "$CONF_DIR/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && compgen -G "$KAFKA_LIB_DIR/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  ensure_tool java openjdk-17-jre-headless
  ensure_tool mvn maven
  say "resolving broker jars from Maven Central into $KAFKA_LIB_DIR (one time)"
  mkdir -p "$KAFKA_LIB_DIR"
  rm -f "$KAFKA_LIB_DIR"/*.jar "$stamp"
  local t0; t0="$(now)"
  if ! mvn -B -q -Dstyle.color=never -f "$CONF_DIR/pom.xml" dependency:copy-dependencies \
       -DincludeScope=runtime -Dkafka.lib.dir="$KAFKA_LIB_DIR" > "$KAFKA_LOG_DIR/mvn.log" 2>&1; then
    tail -n 30 "$KAFKA_LOG_DIR/mvn.log" >&2
    die "mvn dependency:copy-dependencies failed (log: $KAFKA_LOG_DIR/mvn.log)"
  fi
  compgen -G "$KAFKA_LIB_DIR/kafka_2.13-*.jar" >/dev/null || die "mvn ran but no kafka_2.13 jar in $KAFKA_LIB_DIR"
  echo "$want" > "$stamp"
  say "jars resolved in $(since "$t0") s ($(ls "$KAFKA_LIB_DIR"/*.jar | wc -l) jars)"
}

# SASL/PLAIN credentials of the test listener: generated once per data dir, readable by the
# owner only; `source $KAFKA_DATA_DIR/sasl.env` gives KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD.
ensure_sasl_credentials() {
  local f="$KAFKA_DATA_DIR/sasl.env"
  if [[ ! -s "$f" ]]; then
    ( umask 077; printf 'KAFKA_SASL_USERNAME=se\nKAFKA_SASL_PASSWORD=%s\n' \
        "$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')" > "$f" )
  fi
  # shellcheck disable=SC1090
  source "$f"
}

# TLS material of the SASL_SSL test listener, generated once per data dir: a throwaway CA
# (tls/ca.pem, what clients trust) and a server certificate for 127.0.0.1 and localhost whose
# encrypted PKCS#8 key (PBE-SHA1-3DES: the JDK 17 keystore reader has no PBES2) and chain form the broker's PEM keystore (tls/server-keystore.pem).
ensure_tls_material() {
  local d="$KAFKA_DATA_DIR/tls"
  if [[ ! -s "$d/server-keystore.pem" || ! -s "$d/key.password" ]]; then
    command -v openssl >/dev/null || die "openssl not found (needed for the SASL_SSL test listener)"
    rm -rf "$d"; mkdir -p "$d"; chmod 700 "$d"
    ( umask 077
      python3 -c 'import secrets; print(secrets.token_urlsafe(18))' > "$d/key.password"
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=stream-ensemble test CA" \
        -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
      openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$d/san.ext"
      openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
        -extfile "$d/san.ext" -out "$d/server.pem" 2>/dev/null
      openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES -in "$d/server.key" -passout "file:$d/key.password" -out "$d/server.p8" 2>/dev/null
      cat "$d/server.p8" "$d/server.pem" "$d/ca.pem" > "$d/server-keystore.pem"
      rm -f "$d/server.csr" "$d/san.ext" "$d/server.key" ) || die "could not generate TLS material in $d"
  fi
  KAFKA_TLS_KEY_PASSWORD="$(cat "$d/key.password")"
}

render_config() {
  ensure_sasl_credentials
  ensure_tls_material
  sed -e "s#@PORT@#$KAFKA_PORT#g; s#@CPORT@#$KAFKA_CONTROLLER_PORT#g; s#@DATA@#$KAFKA_DATA_DIR#g" \
      -e "s#@SASLPORT@#$KAFKA_SASL_PORT#g; s#@SASLUSER@#$KAFKA_SASL_USERNAME#g; s#@SASLPASS@#$KAFKA_SASL_PASSWORD#g" \
      -e "s#@TLSPORT@#$KAFKA_TLS_PORT#g; s#@TLSKEYPASS@#$KAFKA_TLS_KEY_PASSWORD#g" \
      -e "s#@NODEID@#$KAFKA_NODE_ID#g; s#@VOTERS@#$KAFKA_QUORUM_VOTERS#g; s#@RF@#$KAFKA_REPLICATION_FACTOR#g; s#@MINISR@#$KAFKA_MIN_ISR#g" \
    "$CONF_DIR/server.properties.in" > "$PROPS.tmp"
  [[ -z "${KAFKA_EXTRA_CONFIG:-}" ]] || printf '\n# KAFKA_EXTRA_CONFIG\n%s\n' "$KAFKA_EXTRA_CONFIG" >> "$PROPS.tmp"
  mv "$PROPS.tmp" "$PROPS"
}

log_opts() {  # $1 = log file name inside KAFKA_LOG_DIR
  echo "-Dlog4j2.configurationFile=$CONF_DIR/log4j2.properties -Dkafka.logs.dir=$KAFKA_LOG_DIR -Dkafka.log.file=$1"
}

# Format once: skipped when meta.properties exists; --ignore-formatted keeps a re-run harmless.
format_storage() {
  [[ -f "$KAFKA_DATA_DIR/data/meta.properties" ]] && return 0
  local java cid out
  java="$1"
  # 16 random bytes, URL-safe base64 without padding (22 chars), not starting with '-' (Uuid.java)
  cid="${KAFKA_CLUSTER_ID:-$(python3 -c 'import base64,os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-"): print(s); break')}"
  # shellcheck disable=SC2046
  if ! out="$("$java" -Xmx256m $(log_opts format.log) -cp "$KAFKA_LIB_DIR/*" kafka.tools.StorageTool \
        format -t "$cid" -c "$PROPS" --ignore-formatted 2>&1 9>&-)"; then
    echo "$out" >&2
    die "storage format failed (log: $KAFKA_LOG_DIR/format.log)"
  fi
  say "formatted $KAFKA_DATA_DIR/data (cluster id $cid)"
}

fail_with_logs() {  # $1 = message, $2 = byte offset of this start in server.log
  echo "kafka: ERROR: $1" >&2
  if [[ -f "$SERVER_LOG" ]]; then
    echo "---- first ERROR/FATAL lines of this start ----" >&2
    tail -c +"$(( $2 + 1 ))" "$SERVER_LOG" | grep -E '^\[[^]]*\] (ERROR|FATAL)' | head -n 5 | cut -c1-400 >&2 || true
  fi
  echo "---- last 30 lines of $SERVER_LOG (this start) ----" >&2
  [[ -f "$SERVER_LOG" ]] && tail -c +"$(( $2 + 1 ))" "$SERVER_LOG" | tail -n 30 >&2 || true
  echo "---- last 30 lines of $STDOUT_LOG ----" >&2
  [[ -f "$STDOUT_LOG" ]] && tail -n 30 "$STDOUT_LOG" >&2 || true
  exit 1
}

new_log_has() {  # $1 = offset
  [[ -f "$SERVER_LOG" ]] || return 1
  local off="$1" size
  size="$(stat -c %s "$SERVER_LOG")"
  (( size < off )) && off=0   # rolled over meanwhile
  grep -qF "$READY_MSG" <(tail -c +"$(( off + 1 ))" "$SERVER_LOG")
}

wait_ready() {  # $1 = pid, $2 = log offset or "" (unknown: wait for the port only), $3 = t0
  local pid="$1" off="$2" t0="$3" deadline rc
  deadline=$(( ${EPOCHREALTIME%.*} + KAFKA_START_TIMEOUT ))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      fail_with_logs "broker process $pid exited during startup" "${off:-0}"
    fi
    rc=0; probe "$KAFKA_PORT" || rc=$?
    if (( rc == 0 )) && { [[ -z "$off" ]] || new_log_has "$off"; }; then
      return 0
    fi
    if (( ${EPOCHREALTIME%.*} >= deadline )); then
      echo "kafka: not ready after ${KAFKA_START_TIMEOUT} s; stopping pid $pid" >&2
      do_stop >/dev/null 2>&1 || true
      fail_with_logs "broker did not start within ${KAFKA_START_TIMEOUT} s" "${off:-0}"
    fi
    sleep 0.2
  done
}

do_start() {
  mkdir -p "$KAFKA_LOG_DIR"
  # One start at a time per data dir (fd 9 is closed for every child, so the broker never holds it).
  exec 9>"$KAFKA_DATA_DIR/.start.lock"
  flock -w "$(( KAFKA_START_TIMEOUT + 30 ))" 9 || die "another 'kafka.sh start' holds $KAFKA_DATA_DIR/.start.lock"

  local t0 rc pid
  t0="$(now)"
  rc=0; probe "$KAFKA_PORT" || rc=$?
  if (( rc == 0 )); then
    if pid="$(our_pid)"; then
      say "already running on $HOST:$KAFKA_PORT (pid $pid, version $(version)); reusing"
    else
      say "a Kafka broker (not started by this script) already answers on $HOST:$KAFKA_PORT; reusing"
    fi
    return 0
  fi
  if pid="$(our_pid)"; then
    say "pid $pid (ours) is alive but not serving yet; waiting"
    wait_ready "$pid" "" "$t0"
    say "ready on $HOST:$KAFKA_PORT (pid $pid) after $(since "$t0") s"
    return 0
  fi
  (( rc == 3 )) && die "$HOST:$KAFKA_PORT accepts connections but does not answer as a Kafka broker; free the port or set KAFKA_PORT"
  rm -f "$PIDFILE"

  ensure_jars
  local java; java="$(java_bin)"
  render_config
  format_storage "$java"

  local off=0
  [[ -f "$SERVER_LOG" ]] && off="$(stat -c %s "$SERVER_LOG")"
  echo "==== $(date -Is) ops/kafka.sh start ====" >> "$STDOUT_LOG"
  local tl; tl="$(now)"
  # Detached: own session (setsid), SIGHUP ignored (nohup), stdin from /dev/null, output to
  # stdout.log, so it outlives the calling shell and holds none of the caller's pipes open.
  # The inner bash writes its own pid, then execs java: the pid file names the JVM itself.
  # shellcheck disable=SC2046,SC2086
  ( cd "$KAFKA_DATA_DIR" && exec setsid nohup bash -c 'echo $$ > "$0"; exec "$@"' "$PIDFILE" \
      "$java" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
      "-Xlog:gc*:file=$KAFKA_LOG_DIR/kafkaServer-gc.log:time,tags:filecount=5,filesize=20M" \
      $(log_opts server.log) $KAFKA_OPTS -cp "$KAFKA_LIB_DIR/*" kafka.Kafka "$PROPS" \
      >> "$STDOUT_LOG" 2>&1 < /dev/null 9>&- ) &
  local i
  for i in $(seq 1 50); do [[ -s "$PIDFILE" ]] && break; sleep 0.1; done
  pid="$(tr -dc '0-9' < "$PIDFILE" 2>/dev/null || true)"
  [[ -n "$pid" ]] || fail_with_logs "launch failed (no pid file)" "$off"
  [[ -n "${OPS_RECORD_FILE:-}" ]] && printf 'kafka\t%s\n' "$KAFKA_DATA_DIR" >> "$OPS_RECORD_FILE"

  wait_ready "$pid" "$off" "$t0"
  say "started Kafka $(version) on $HOST:$KAFKA_PORT (controller $HOST:$KAFKA_CONTROLLER_PORT, pid $pid) in $(since "$tl") s (total $(since "$t0") s); logs in $KAFKA_LOG_DIR"
}

do_stop() {
  local pid t0
  if ! pid="$(our_pid)"; then
    [[ -f "$PIDFILE" ]] && rm -f "$PIDFILE"
    if probe "$KAFKA_PORT"; then
      say "not started by this script (no live $PIDFILE), but a broker answers on $HOST:$KAFKA_PORT; left alone"
    else
      say "not running"
    fi
    return 0
  fi
  t0="$(now)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$(( ${EPOCHREALTIME%.*} + KAFKA_STOP_TIMEOUT ))
  while kill -0 "$pid" 2>/dev/null && (( ${EPOCHREALTIME%.*} < deadline )); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid still alive after ${KAFKA_STOP_TIMEOUT} s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  say "stopped (pid $pid) in $(since "$t0") s"
}

do_status() {
  local pid rc=0
  probe "$KAFKA_PORT" || rc=$?
  if pid="$(our_pid)"; then
    if (( rc == 0 )); then
      say "running on $HOST:$KAFKA_PORT (pid $pid, version $(version), data $KAFKA_DATA_DIR)"; return 0
    fi
    say "starting or unresponsive: pid $pid alive but $HOST:$KAFKA_PORT does not answer"; return 1
  fi
  if (( rc == 0 )); then
    say "running on $HOST:$KAFKA_PORT (not started by this script)"; return 0
  fi
  say "stopped"; return 1
}

do_logs() {
  [[ -f "$SERVER_LOG" ]] || die "no log yet at $SERVER_LOG"
  if [[ "${1:-}" == "-f" ]]; then exec tail -n "${LINES:-100}" -F "$SERVER_LOG"; fi
  tail -n "${LINES:-100}" "$SERVER_LOG"
}

case "${1:-}" in
  start)  do_start ;;
  stop)   do_stop ;;
  status) do_status ;;
  logs)   shift; do_logs "$@" ;;
  *) echo "usage: $0 start|stop|status|logs [-f]" >&2; exit 2 ;;
esac
