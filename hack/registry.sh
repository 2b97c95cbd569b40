#!/usr/bin/env bash
# The local registries berth's image tests pull from (docs/test-fixtures.md):
#   127.0.0.1:5000  docker-registry, plain HTTP, no auth: build.sh pushes here
#   127.0.0.1:5443  docker-registry, HTTPS (own CA) + htpasswd basic auth, same storage as :5000
#   127.0.0.1:5002  hack/faultproxy.py in front of :5000, faults chosen by the tests
#
#   hack/registry.sh start    start whatever is not running (idempotent), wait until it answers
#   hack/registry.sh stop     stop all three
#   hack/registry.sh status   say what runs
#   hack/registry.sh env      print `export` lines for the tests: eval "$(hack/registry.sh env)"
#
# State (storage, configs, CA and certs, password, pid files, logs, env) lives in $BERTH_TEST_DIR
# (default /var/lib/berth-test) and is created on first start. BERTH_TEST_REGISTRY,
# BERTH_TEST_REGISTRY_TLS and BERTH_TEST_FAULTPROXY move the three servers to other addresses. Debian's /etc/docker/registry config
# and its systemd service are never used.
set -euo pipefail

HACK=$(cd "$(dirname "$0")" && pwd)
DIR=${BERTH_TEST_DIR:-/var/lib/berth-test}
REG=$DIR/registry
TLS=$DIR/tls
AUTH=$DIR/auth
RUN=$DIR/run
# The addresses can be moved (e.g. for a second, throw-away instance); the tests read them from env.
PLAIN_ADDR=${BERTH_TEST_REGISTRY:-127.0.0.1:5000}
TLS_ADDR=${BERTH_TEST_REGISTRY_TLS:-127.0.0.1:5443}
PROXY_ADDR=${BERTH_TEST_FAULTPROXY:-127.0.0.1:5002}
REGISTRY_USER=berth
PYTHON=${PYTHON:-python3}

die() { echo "registry.sh: $*" >&2; exit 1; }

SERVICES=(registry-plain registry-tls faultproxy)
# What the command line of each service contains, so a reused pid is not mistaken for it.
declare -A SIGNATURE=([registry-plain]=/plain.yml [registry-tls]=/tls.yml [faultproxy]=/faultproxy.py)

# pid of service $1 if it runs (its pid file names a live process with the expected command line).
running_pid() {
  local pidfile=$RUN/$1.pid pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "${SIGNATURE[$1]}" || return 1
  echo "$pid"
}

# Waits until $1 answers HTTP status $2 (any status if empty); $3 = extra curl args.
wait_http() {
  local url=$1 want=$2 extra=${3:-} code
  for _ in $(seq 1 100); do
    # shellcheck disable=SC2086
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 $extra "$url" || true)
    if [[ $code != 000 && ( -z $want || $code == "$want" ) ]]; then return 0; fi
    sleep 0.1
  done
  die "$url did not answer ${want:-at all} within 10s (last: $code); see the logs in $RUN"
}

port_busy() { curl -s -o /dev/null --max-time 1 "$1" 2>/dev/null || [[ $? -ne 7 ]]; }

# Starts `$2...` as service $1 in its own session; the pid file holds the process's own pid.
launch() {
  local name=$1; shift
  rm -f "$RUN/$name.pid"
  # shellcheck disable=SC2016
  setsid -f sh -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$@" >>"$RUN/$name.log" 2>&1 </dev/null
  for _ in $(seq 1 50); do [[ -s $RUN/$name.pid ]] && return 0; sleep 0.1; done
  die "$name did not start; see $RUN/$name.log"
}

make_tls() {
  [[ -s $TLS/ca.pem && -s $TLS/server.pem && -s $TLS/server-key.pem ]] && return 0
  echo "registry.sh: creating a test CA and a server certificate in $TLS" >&2
  mkdir -p "$TLS"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS/ca-key.pem" 2>/dev/null
  openssl req -x509 -new -key "$TLS/ca-key.pem" -sha256 -days 3650 -subj "/CN=berth test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$TLS/ca.pem"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS/server-key.pem" 2>/dev/null
  cat >"$TLS/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  openssl req -new -key "$TLS/server-key.pem" -subj "/CN=localhost" -out "$TLS/server.csr"
  openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 8)" -days 3650 -sha256 -extfile "$TLS/server.ext" \
    -out "$TLS/server.pem" 2>/dev/null
  rm -f "$TLS/server.csr"
  chmod 600 "$TLS/ca-key.pem" "$TLS/server-key.pem"
}

make_auth() {
  mkdir -p "$AUTH"
  chmod 700 "$AUTH"
  [[ -s $AUTH/password ]] || openssl rand -hex 12 >"$AUTH/password"
  [[ -s $AUTH/secret ]] || openssl rand -hex 32 >"$AUTH/secret"
  chmod 600 "$AUTH/password" "$AUTH/secret"
  htpasswd -Bbn "$REGISTRY_USER" "$(<"$AUTH/password")" | sed '/^$/d' >"$AUTH/htpasswd"
}

# The config of one registry: $1 = address, $2 = extra YAML (tls, auth). Both share one storage dir.
write_config() {
  cat <<EOF
# Written by hack/registry.sh on every start; edits are lost.
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $REG/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $1
  secret: $(<"$AUTH/secret")
  headers:
    X-Content-Type-Options: [nosniff]
$2
EOF
}

write_env() {
  [[ -s $AUTH/password && -s $TLS/ca.pem ]] || die "no state in $DIR yet: run hack/registry.sh start"
  printf 'export BERTH_TEST_DIR=%q\n' "$DIR"
  printf 'export BERTH_TEST_REGISTRY=%q\n' "$PLAIN_ADDR"
  printf 'export BERTH_TEST_REGISTRY_TLS=%q\n' "$TLS_ADDR"
  printf 'export BERTH_TEST_CA=%q\n' "$TLS/ca.pem"
  printf 'export BERTH_TEST_REGISTRY_USER=%q\n' "$REGISTRY_USER"
  printf 'export BERTH_TEST_REGISTRY_PASSWORD=%q\n' "$(<"$AUTH/password")"
  printf 'export BERTH_TEST_FAULTPROXY=%q\n' "$PROXY_ADDR"
  printf 'export BERTH_TEST_TOKEN_USER=tokenuser\n'
  printf 'export BERTH_TEST_TOKEN_PASSWORD=tokenpass\n'
}

start() {
  for tool in docker-registry openssl htpasswd curl setsid "$PYTHON"; do
    command -v "$tool" >/dev/null || die "$tool is missing; run hack/install-deps.sh"
  done
  mkdir -p "$REG/storage" "$RUN"
  make_tls
  make_auth
  write_config "$PLAIN_ADDR" "" >"$REG/plain.yml"
  write_config "$TLS_ADDR" "  tls:
    certificate: $TLS/server.pem
    key: $TLS/server-key.pem
auth:
  htpasswd:
    realm: berth-test
    path: $AUTH/htpasswd" >"$REG/tls.yml"

  if ! running_pid registry-plain >/dev/null; then
    port_busy "http://$PLAIN_ADDR/" && die "$PLAIN_ADDR is taken by another process (Debian's docker-registry service?)"
    launch registry-plain docker-registry serve "$REG/plain.yml"
  fi
  if ! running_pid registry-tls >/dev/null; then
    port_busy "https://$TLS_ADDR/" && die "$TLS_ADDR is taken by another process"
    launch registry-tls docker-registry serve "$REG/tls.yml"
  fi
  if ! running_pid faultproxy >/dev/null; then
    port_busy "http://$PROXY_ADDR/" && die "$PROXY_ADDR is taken by another process"
    launch faultproxy "$PYTHON" "$HACK/faultproxy.py" --listen "$PROXY_ADDR" --upstream "http://$PLAIN_ADDR"
  fi
  wait_http "http://$PLAIN_ADDR/v2/" 200
  wait_http "https://$TLS_ADDR/v2/" 401 "--cacert $TLS/ca.pem"
  wait_http "http://$PROXY_ADDR/__fault/state" 200
  write_env >"$DIR/env"
  chmod 600 "$DIR/env"
  status
}

stop() {
  local name pid
  for name in faultproxy registry-tls registry-plain; do
    pid=$(running_pid "$name") || { rm -f "$RUN/$name.pid"; continue; }
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$RUN/$name.pid"
    echo "stopped $name (pid $pid)"
  done
}

status() {
  local name pid
  for name in "${SERVICES[@]}"; do
    if pid=$(running_pid "$name"); then
      echo "$name: running, pid $pid, log $RUN/$name.log"
    else
      echo "$name: stopped"
    fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) write_env ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
