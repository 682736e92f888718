#!/usr/bin/env bash
# CPU time per request of tempo builds serving one component: the server pinned to core 0 and
# wrk to core 1, the server's user and system time read from /proc before and after each round.
# Rounds alternate between the builds, so a slow spell of the machine falls on all of them; each
# build's median is printed, and each pair of neighbouring rounds gives one difference, whose
# median is printed too. Finer than requests/s (bench/ab.sh), which moves with wrk's own share
# of the machine. Needs two cores.
#
#   bench/cpu.sh BIN TEMPO...        # ROUNDS (default 8), DURATION (4s), CONNECTIONS override
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: bench/cpu.sh BIN TEMPO..." >&2; exit 2; }
# Paths as given, from where the script was started.
BIN=$(realpath "$1"); shift
builds=()
for tempo in "$@"; do builds+=("$(realpath "$tempo")"); done
cd "$(dirname "$0")/.."
source bench/common.sh
ROUNDS=${ROUNDS:-8} DURATION=${DURATION:-4s} PORT=${PORT:-18100}
need "Debian: apt-get install wrk" wrk
[ "$(nproc)" -ge 2 ] || { echo "bench/cpu.sh pins the server and wrk to two cores; this machine has $(nproc)" >&2; exit 1; }
ticks=$(getconf CLK_TCK)

# Serves BIN with tempo $1 on core 0, on the fresh port of build $3 in round $2, and prints
# "<CPU µs per request> <requests/s>".
round() {
  local port url
  port=$(fresh_port "$2" "$3" "${#builds[@]}")
  url=http://127.0.0.1:$port/
  taskset -c 0 "$1" run "$BIN" --listen "127.0.0.1:$port" -q >/dev/null 2>&1 &
  server_pid=$!
  wait_until_up "$url"
  taskset -c 1 wrk -t1 -c"${CONNECTIONS:-32}" -d2s "$url" >/dev/null # warm-up
  local before after out
  before=$(awk '{ print $14 + $15 }' "/proc/$server_pid/stat")
  out=$(taskset -c 1 wrk -t1 -c"${CONNECTIONS:-32}" -d"$DURATION" "$url")
  after=$(awk '{ print $14 + $15 }' "/proc/$server_pid/stat")
  stop_server
  echo "$out" | awk -v t=$((after - before)) -v hz="$ticks" '
    /requests in/ { n = $1 } /Requests\/sec/ { rps = $2 }
    END { printf "%.1f %.0f\n", t * 1e6 / hz / n, rps }'
}

declare -a cpu rps
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for i in "${!builds[@]}"; do
    read -r us req < <(round "${builds[$i]}" "$r" "$i")
    cpu[$i]="${cpu[$i]:-} $us"; rps[$i]="${rps[$i]:-} $req"
    line="$line $us µs ($req req/s)"
  done
  echo "$line"
done
for i in "${!builds[@]}"; do
  # shellcheck disable=SC2086
  echo "${builds[$i]}: median $(median ${cpu[$i]}) µs per request, $(median ${rps[$i]}) req/s"
  if [ "$i" -gt 0 ]; then
    read -ra base <<<"${cpu[0]}"; read -ra this <<<"${cpu[$i]}"
    diffs=$(for k in "${!base[@]}"; do awk -v a="${base[$k]}" -v b="${this[$k]}" 'BEGIN { print b - a }'; done)
    # shellcheck disable=SC2086
    echo "  against the first: median difference $(median $diffs) µs per request"
  fi
done
