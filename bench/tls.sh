#!/usr/bin/env bash
# The production edge's cost on one tempo: examples/hello-http's .bin served over plain HTTP/1.1
# (wrk), HTTPS HTTP/1.1 (wrk), HTTPS HTTP/2 and cleartext h2c (h2load, 10 streams per connection),
# and new TLS connections per second (wrk with `Connection: close`: a full handshake per request).
# Prints each round, then the medians and their ratios to plain HTTP/1.1.
#
#   bench/tls.sh                          # 3 rounds of 10 s, 32 connections
#   ROUNDS=5 DURATION=8s bench/tls.sh
#   TEMPO=/tmp/cargo-tempo bench/tls.sh   # a tempo built beforehand (skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10s} CONNECTIONS=${CONNECTIONS:-32}
PLAIN_PORT=${PLAIN_PORT:-18180} TLS_PORT=${TLS_PORT:-18443}

# shellcheck source=bench/common.sh
source bench/common.sh
need "Debian: apt-get install wrk nghttp2-client openssl" wrk h2load openssl
build_hello

pki=$(mktemp -d)
trap 'stop_server; rm -rf "$pki"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$pki/key.pem" -out "$pki/cert.pem" 2>/dev/null

# Serves the hello .bin with `$@` added, on $1's port.
serve() {
  local url=$1
  shift
  TEMPO_HTTP_SHUTDOWN_DELAY_MS=0 "$tempo" run "$bin" -q "$@" >/dev/null 2>&1 &
  server_pid=$!
  for _ in $(seq 1 200); do curl -sfk "$url" >/dev/null && return 0; sleep 0.05; done
  echo "tempo at $url did not come up" >&2
  exit 1
}

# h2load's requests/s against $1: CONNECTIONS connections, 10 streams each, for DURATION.
h2_load() {
  h2load -c "$CONNECTIONS" -m 10 -D 2 "$1" >/dev/null # warm-up
  h2load -c "$CONNECTIONS" -m 10 -D "${DURATION%s}" "$1" | awk '/^finished in/ { printf "%.0f\n", $4 }'
}

plain_h1=() tls_h1=() tls_h2=() plain_h2=() handshakes=()
for round in $(seq "$ROUNDS"); do
  serve "http://127.0.0.1:$PLAIN_PORT/" --listen "127.0.0.1:$PLAIN_PORT"
  p1=$(load "http://127.0.0.1:$PLAIN_PORT/" | cut -d' ' -f1)
  p2=$(h2_load "http://127.0.0.1:$PLAIN_PORT/")
  stop_server
  serve "https://127.0.0.1:$TLS_PORT/" --listen "127.0.0.1:$TLS_PORT" \
    --tls-cert "$pki/cert.pem" --tls-key "$pki/key.pem"
  t1=$(load "https://127.0.0.1:$TLS_PORT/" | cut -d' ' -f1)
  t2=$(h2_load "https://127.0.0.1:$TLS_PORT/")
  hs=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H 'Connection: close' "https://127.0.0.1:$TLS_PORT/" |
    awk '/Requests\/sec/ { printf "%.0f\n", $2 }')
  stop_server
  echo "round $round: plain HTTP/1.1 $p1, h2c $p2, HTTPS HTTP/1.1 $t1, HTTPS HTTP/2 $t2 req/s; new TLS connections $hs/s"
  plain_h1+=("$p1") plain_h2+=("$p2") tls_h1+=("$t1") tls_h2+=("$t2") handshakes+=("$hs")
done

base=$(median "${plain_h1[@]}")
ratio() { awk -v a="$1" -v b="$base" 'BEGIN { printf "%.2fx", a / b }'; }
echo
echo "medians of $ROUNDS rounds ($CONNECTIONS connections, $DURATION each):"
echo "  plain HTTP/1.1 (wrk)        $base req/s"
echo "  HTTPS HTTP/1.1 (wrk)        $(median "${tls_h1[@]}") req/s  $(ratio "$(median "${tls_h1[@]}")") of plain HTTP/1.1"
echo "  HTTPS HTTP/2 (h2load -m10)  $(median "${tls_h2[@]}") req/s  $(ratio "$(median "${tls_h2[@]}")")"
echo "  h2c (h2load -m10)           $(median "${plain_h2[@]}") req/s  $(ratio "$(median "${plain_h2[@]}")")"
echo "  new TLS connections         $(median "${handshakes[@]}")/s (a handshake and a request each)"
