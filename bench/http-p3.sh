#!/usr/bin/env bash
# WASI 0.3 HTTP throughput: the http-p3 template's hello (`GET /`) served by tempo (its AOT .bin,
# instances reused as configured) and by `wasmtime serve -Scli` 48 and 49 (the same .wasm; both
# reuse p3 instances by default: 128 requests, 16 at once), wasmtime 48 again with a request
# timeout as long as tempo's default deadline (`-Wtimeout=60s`: epoch interruption, which tempo
# always has), and tempo serving the WASI 0.2 hello (examples/hello-http, a fresh instance per
# request) for p2 against p3. Each round runs every server once under the same wrk; prints
# requests/s, p99 and tempo p3's ratio to each.
#
#   bench/http-p3.sh                  # 3 rounds of 10 s, 32 connections, 1 wrk thread
#   DURATION=30s CONNECTIONS=64 ROUNDS=5 bench/http-p3.sh
#   TEMPO_HTTP_INSTANCE_REUSE=1 bench/http-p3.sh      # tempo's settings apply, from the environment
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10s} CONNECTIONS=${CONNECTIONS:-32} THREADS=${THREADS:-1}
PORT=${PORT:-18083}
tools=$PWD/target/bench-tools

# shellcheck source=bench/common.sh
source bench/common.sh
need "Debian: apt-get install wrk" wrk
wasmtime48=$(wasmtime_bin 48 "$tools")
wasmtime49=$(wasmtime_bin 49 "$tools")

echo "==> building tempo (release), the http-p3 template's hello and examples/hello-http" >&2
build_tempo
project=$PWD/target/bench-p3/hello-p3
rm -rf "$project"
"$tempo" new hello-p3 --template http-p3 --path "$project" --quiet
p3=$(cd "$project" && "$tempo" build --release --quiet --target-dir "$tools/../bench-examples")
p2=$(cd examples/hello-http && "$tempo" build --release --quiet --target-dir "$tools/../bench-examples")
p3_wasm=$(grep '\.wasm$' <<<"$p3"); p3_bin=$(grep '\.bin$' <<<"$p3")
p2_bin=$(grep '\.bin$' <<<"$p2")

measure() { # SERVER command... (`PORT` in it is the port); SERVER is the server's index, 0 to 4
  local port
  port=$(fresh_port "$round" "$1" 5)
  shift
  "${@//PORT/$port}" >/dev/null 2>&1 &
  server_pid=$!
  wait_until_up "http://127.0.0.1:$port/"
  load "http://127.0.0.1:$port/"
  stop_server
}

names=("tempo run, p3 hello" "wasmtime 48 serve, p3" "wasmtime 49 serve, p3" "wasmtime 48, timeout"
  "tempo run, p2 hello")
declare -a rps0 rps1 rps2 rps3 rps4 p990 p991 p992 p993 p994
for round in $(seq 1 "$ROUNDS"); do
  echo "==> round $round/$ROUNDS" >&2
  read -r r p < <(measure 0 "$tempo" run --quiet "$p3_bin" --listen "127.0.0.1:PORT")
  rps0+=("$r"); p990+=("$p")
  read -r r p < <(measure 1 "$wasmtime48" serve -Scli --addr "127.0.0.1:PORT" "$p3_wasm")
  rps1+=("$r"); p991+=("$p")
  read -r r p < <(measure 2 "$wasmtime49" serve -Scli --addr "127.0.0.1:PORT" "$p3_wasm")
  rps2+=("$r"); p992+=("$p")
  read -r r p < <(measure 3 "$wasmtime48" serve -Scli -Wtimeout=60s --addr "127.0.0.1:PORT" "$p3_wasm")
  rps3+=("$r"); p993+=("$p")
  read -r r p < <(measure 4 "$tempo" run --quiet "$p2_bin" --listen "127.0.0.1:PORT")
  rps4+=("$r"); p994+=("$p")
done


echo
echo "p3 hello (templates/http-p3 GET /), wrk -t$THREADS -c$CONNECTIONS -d$DURATION, median of $ROUNDS rounds"
echo "tempo reuse: ${TEMPO_HTTP_INSTANCE_REUSE:-128} requests per instance, ${TEMPO_HTTP_INSTANCE_CONCURRENCY:-16} at once"
machine
report "tempo p3"
