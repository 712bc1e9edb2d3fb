#!/usr/bin/env bash
# The import benchmark of issue 8: generate ROWS person rows (default 1,000,000), import them with
# POST /api/v1/imports (mode commit, atomicity rows) on SQLite and PostgreSQL, and print rows per
# second and the server's peak resident memory. Beside it, the database's own bulk path into a
# plain table with a unique index (PostgreSQL COPY; SQLite one transaction of prepared inserts),
# so the ratio is visible.
#
#   bench/import.sh
#   ROWS=100000 BACKENDS=sqlite bench/import.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
PORT=${PORT:-18184}
BASE="http://127.0.0.1:$PORT"
BENCH_POSTGRES_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

# shellcheck source=bench/lib.sh
source bench/lib.sh
export TAVANA_IMPORT_DIR="$workdir/spool"

# The person rows (bench/persons.py): varied names and birth dates, as the possible-duplicate
# check meets them on real data.
generate() { python3 bench/persons.py "$1" "$2" "$ROWS"; }

run_backend() {
    local label=$1 url=$2
    echo
    echo "== $label"
    DATABASE_URL=$url ./target/release/tavana demo-data --households 1000 >/dev/null
    case $label in
        sqlite) sqlite3 "${url#sqlite://}" "SELECT id FROM households" >"$workdir/households" ;;
        postgres) psql -qAt "$url" -c "SELECT id FROM households" >"$workdir/households" ;;
    esac
    generate "$workdir/households" "$workdir/persons.csv"
    echo "file: $ROWS rows, $(du -h "$workdir/persons.csv" | cut -f1)"

    DATABASE_URL=$url ./target/release/tavana serve --bind "127.0.0.1:$PORT" >"$workdir/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do curl -fs "$BASE/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
    local admin job state started finished
    admin=$(curl -fs "$BASE/api/v1/auth/token" -H 'content-type: application/json' \
        -d "{\"grant_type\":\"password\",\"username\":\"admin\",\"password\":\"$TAVANA_ADMIN_PASSWORD\"}" \
        | json_field access_token)
    started=$(date +%s.%N)
    job=$(curl -fs "$BASE/api/v1/imports?kind=persons&mode=commit&atomicity=rows" -H "Authorization: Bearer $admin" \
        -H 'content-type: text/csv' --data-binary @"$workdir/persons.csv" | sed -E 's/.*"id":"([^"]+)".*/\1/')
    while :; do
        state=$(curl -fs "$BASE/api/v1/imports/$job" -H "Authorization: Bearer $admin")
        grep -q '"state":"running"' <<<"$state" || break
        sleep 0.5
    done
    finished=$(date +%s.%N)
    local peak
    peak=$(awk '/VmHWM/ {print $2 / 1024 " MB"}' "/proc/$server/status")
    # The service's own CPU time (its threads, finished ones too): the rest of the wall time is the
    # database's (PostgreSQL's server) or waiting.
    local cpu
    cpu=$(awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz " s"}' "/proc/$server/stat")
    # What the service wrote to files (SQLite's database and its log; on PostgreSQL, its server
    # writes, not the service).
    local written
    written=$(awk '/^wchar/ {print int($2 / 1048576) " MB"}' "/proc/$server/io")
    echo "import: $(grep -oE '"(created|failed)":[0-9]+' <<<"$state" | paste -sd' ' -) in $(python3 -c "print(f'{$finished - $started:.1f}')") s" \
        "= $(python3 -c "print(int($ROWS / ($finished - $started)))") rows/s; server peak memory $peak, CPU $cpu, wrote $written"
    kill "$server" && wait "$server" 2>/dev/null || true
    server=""

    started=$(date +%s.%N)
    case $label in
        sqlite)
            python3 - "$workdir/bulk.db" "$workdir/persons.csv" <<'PY'
import csv, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE bulk (national_id TEXT, first_name TEXT, last_name TEXT, birth_date TEXT, sex TEXT, household_id TEXT, household_role TEXT)")
db.execute("CREATE UNIQUE INDEX bulk_national_id ON bulk (national_id)")
with open(sys.argv[2], encoding="utf-8") as f:
    rows = csv.reader(f)
    next(rows)
    with db:
        db.executemany("INSERT INTO bulk VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
PY
            ;;
        postgres)
            psql -q "$url" -c "CREATE TABLE bulk (national_id TEXT, first_name TEXT, last_name TEXT, birth_date TEXT, sex TEXT, household_id TEXT, household_role TEXT)" \
                -c "CREATE UNIQUE INDEX bulk_national_id ON bulk (national_id)" \
                -c "\\copy bulk FROM '$workdir/persons.csv' WITH (FORMAT csv, HEADER true)"
            ;;
    esac
    finished=$(date +%s.%N)
    echo "bulk load: $(python3 -c "print(f'{$finished - $started:.1f}')") s = $(python3 -c "print(int($ROWS / ($finished - $started)))") rows/s"
}

BACKENDS=${BACKENDS:-sqlite postgres}
echo "Tavana import benchmark: $ROWS rows, $(nproc) cores"
if [[ " $BACKENDS " == *" sqlite "* ]]; then
    run_backend sqlite "sqlite://$workdir/bench.db"
fi
failed=0
if [[ " $BACKENDS " == *" postgres "* ]]; then
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        name="tavana_import_$$"
        psql -q "$BENCH_POSTGRES_URL" -c "CREATE DATABASE $name" >/dev/null
        # The database is dropped whether the run ends well or not; a failed run is said.
        run_backend postgres "${BENCH_POSTGRES_URL%/*}/$name" || { echo "postgres: the run failed" >&2; failed=1; }
        psql -q "$BENCH_POSTGRES_URL" -c "DROP DATABASE $name WITH (FORCE)" >/dev/null
    else
        echo "postgres: not answering on 127.0.0.1:5432; not run" >&2
        failed=1
    fi
fi
exit $failed
