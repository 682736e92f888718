#!/usr/bin/env bash
# A/B of two tempo builds on the same component: requests/s of each serving BIN, in alternating
# rounds (so both see the same machine), with the same wrk. For checking that a change costs the
# request path nothing measurable; bench/http.sh compares tempo with its peers.
#
#   bench/ab.sh BIN OLD_TEMPO NEW_TEMPO        # ROUNDS, DURATION, CONNECTIONS override
set -euo pipefail
BIN=$1 OLD=$2 NEW=$3
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-8s} CONNECTIONS=${CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "bench/ab.sh needs wrk (Debian: apt-get install wrk)" >&2; exit 1; }

# Serves BIN with tempo $1 on port $2 and prints wrk's requests/s.
run() {
  local tempo=$1 port=$2
  "$tempo" run "$BIN" --listen "127.0.0.1:$port" -q >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
  wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port/" >/dev/null # warm-up
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for round in $(seq "$ROUNDS"); do
  echo "round $round: old $(run "$OLD" 18091) req/s, new $(run "$NEW" 18092) req/s"
done
