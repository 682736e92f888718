#!/usr/bin/env bash
# Shipping through a registry: examples/hello-http's release .wasm pushed to a local registry
# (Debian's docker-registry), then started from it, each start timed from process start to its
# first 200:
#   - `run oci://…:tag` with an empty cache (pull and compile);
#   - `run oci://…@sha256:…` with the registry stopped (from the cache, compiled code cached);
#   - `run hello_http.bin`, the local AOT file, for comparison.
# Prints the push time and the median of ROUNDS starts of each.
#
#   bench/oci.sh                 # ROUNDS=7; TEMPO=path skips the build
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-7} REGISTRY_PORT=${REGISTRY_PORT:-15099} PORT=${PORT:-18199}

# shellcheck source=bench/common.sh
source bench/common.sh
need "Debian: apt-get install docker-registry" docker-registry
build_hello
work=$(mktemp -d)
registry_pid=
stop_registry() { if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; registry_pid=; fi; }
trap 'stop_server; stop_registry; rm -rf "$work"' EXIT
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$work" "$REGISTRY_PORT" >"$work/registry.yml"
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
registry_pid=$!
wait_until_up "http://127.0.0.1:$REGISTRY_PORT/v2/"

now_ms() { date +%s%3N; }
# Milliseconds from starting `$tempo run $1` (with TEMPO_CACHE_DIR=$2) to its first 200.
start_ms() {
  local started
  started=$(now_ms)
  TEMPO_CACHE_DIR=$2 TEMPO_HTTP_SHUTDOWN_DELAY_MS=0 "$tempo" run "$1" -q --listen "127.0.0.1:$PORT" >/dev/null 2>&1 &
  server_pid=$!
  until curl -sf "http://127.0.0.1:$PORT/" >/dev/null 2>&1; do sleep 0.002; done
  echo $(($(now_ms) - started))
  # The compile cache is written in the background after the start: give it time to land.
  sleep 1
  stop_server
}

reference=127.0.0.1:$REGISTRY_PORT/bench/hello:v1
started=$(now_ms)
pinned=$("$tempo" push "$reference" "$wasm" -q)
echo "push of $(du -h "$wasm" | cut -f1) took $(($(now_ms) - started)) ms: $pinned"

cold=() warm=() local_bin=()
for round in $(seq "$ROUNDS"); do
  cold+=("$(start_ms "oci://$reference" "$work/cold-$round/wasmtime")")
done
stop_registry
for round in $(seq "$ROUNDS"); do
  warm+=("$(start_ms "oci://$pinned" "$work/cold-1/wasmtime")")
  local_bin+=("$(start_ms "$bin" "$work/cold-1/wasmtime")")
done
echo "start to first 200, median of $ROUNDS:"
echo "  oci:// by tag, empty cache (pull + compile)     $(median "${cold[@]}") ms  (${cold[*]})"
echo "  oci:// by digest, cached, registry stopped      $(median "${warm[@]}") ms  (${warm[*]})"
echo "  the local .bin                                  $(median "${local_bin[@]}") ms  (${local_bin[*]})"
