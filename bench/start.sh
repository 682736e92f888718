#!/usr/bin/env bash
# Start time: from process start to the first 200 of examples/hello-http, served by tempo from its
# AOT `.bin` and by `wasmtime serve --allow-precompiled` 48 and 49 from a `.cwasm` of the same
# component (`wasmtime compile` of the same version). Each round starts every server once, in
# turn, a quarter of a second apart; a poller connects every half millisecond until `GET /`
# answers 200. Prints the medians.
#
#   bench/start.sh              # 11 rounds
#   ROUNDS=21 bench/start.sh
#   bench/start.sh OLD_TEMPO    # and a row for another tempo binary (an A/B of a change), on the
#                               # same `.bin` (its format and engine must be this tempo's)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-11}
old_tempo=${1:-}
PORT=${PORT:-18084}
tools=$PWD/target/bench-tools

# shellcheck source=bench/common.sh
source bench/common.sh
wasmtime48=$(wasmtime_bin 48 "$tools")
wasmtime49=$(wasmtime_bin 49 "$tools")

build_hello
work=$(mktemp -d)
trap 'stop_server; rm -rf "$work"' EXIT
"$wasmtime48" compile "$wasm" -o "$work/hello-48.cwasm"
"$wasmtime49" compile "$wasm" -o "$work/hello-49.cwasm"

# Milliseconds from starting the command to the first 200 on $PORT; the server is then stopped.
start_ms() {
  python3 - "$PORT" "$@" <<'EOF'
import http.client, subprocess, sys, time
port, command = int(sys.argv[1]), sys.argv[2:]
started = time.monotonic()
server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/")
            if connection.getresponse().status == 200:
                break
        except OSError:
            pass
        if server.poll() is not None:
            sys.exit(f"{command[0]} exited with {server.returncode} before answering")
        time.sleep(0.0005)
    print(f"{(time.monotonic() - started) * 1000:.1f}")
finally:
    server.terminate()
    server.wait()
    # The machine settles before the next start: without this pause, the server started right
    # after a tempo measured 2 to 4 ms slower.
    time.sleep(0.25)
EOF
}

names=("tempo run (.bin)" "wasmtime 48 serve (.cwasm)" "wasmtime 49 serve (.cwasm)" "old tempo run (.bin)")
rows=(0 1 2)
declare -a ms0 ms1 ms2 ms3
for round in $(seq 1 "$ROUNDS"); do
  echo "==> round $round/$ROUNDS" >&2
  ms0+=("$(start_ms "$tempo" run --quiet "$bin" --listen "127.0.0.1:$PORT")")
  ms1+=("$(start_ms "$wasmtime48" serve -Scli --allow-precompiled --addr "127.0.0.1:$PORT" "$work/hello-48.cwasm")")
  ms2+=("$(start_ms "$wasmtime49" serve -Scli --allow-precompiled --addr "127.0.0.1:$PORT" "$work/hello-49.cwasm")")
  if [[ -n $old_tempo ]]; then
    ms3+=("$(start_ms "$old_tempo" run --quiet "$bin" --listen "127.0.0.1:$PORT")")
  fi
done
if [[ -n $old_tempo ]]; then
  rows+=(3)
  names[3]="old tempo run (.bin): $(basename "$old_tempo")"
fi

echo
echo "hello-http, process start to first 200, median of $ROUNDS starts each"
machine
printf '%-28s %8s %14s   %s\n' server "ms" "tempo's ratio" "starts (ms)"
t=$(median "${ms0[@]}")
for i in "${rows[@]}"; do
  declare -n ms="ms$i"
  m=$(median "${ms[@]}")
  printf '%-28s %8s %14s   %s\n' "${names[$i]}" "$m" "$(awk -v t="$t" -v m="$m" 'BEGIN { printf "%.2fx", t / m }')" "${ms[*]}"
done
echo "(tempo's ratio: its time over the row's; below 1 starts sooner)"
