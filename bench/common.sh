# Shared by the bench scripts: starting, waiting for and stopping the server under test.
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
