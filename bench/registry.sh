#!/usr/bin/env bash
# The registry benchmark of issue 4: with 100,000 households / ~300,000 persons loaded, measure
# with a facilitator's token (scope enforced in the query) at 16 connections:
#   GET /api/v1/persons/{id}           one person by id
#   GET /api/v1/persons?woman_head=true&limit=50   a filtered list page
#   GET /health/ready                  one database round trip, for comparison
# on SQLite and, when a server answers, on PostgreSQL. Prints req/s, p50 and p99.
#
#   bench/registry.sh                      # both backends (PostgreSQL if 127.0.0.1:5432 answers)
#   HOUSEHOLDS=20000 DURATION=5s bench/registry.sh
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres bench/registry.sh
#   BACKENDS=postgres TAVANA_DB_POOL_SIZE=8 bench/registry.sh   # the pool defaults to 2 x cores
set -euo pipefail
cd "$(dirname "$0")/.."

HOUSEHOLDS=${HOUSEHOLDS:-100000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
PORT=${PORT:-18182}
BASE="http://127.0.0.1:$PORT"
BENCH_POSTGRES_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    (apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }) >&2 || true
    command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
fi

# shellcheck source=bench/lib.sh
source bench/lib.sh

wrk_row() {
    local name=$1 path=$2 token=$3 script=${4:-}
    local out
    if [ -n "$script" ]; then
        out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $token" -s "$script" "$BASE$path")
    else
        out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $token" "$BASE$path")
    fi
    printf '%-44s %10s %9s %9s %8s\n' "$name" \
        "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")" \
        "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
        "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
        "$(awk '/Non-2xx/ {print $NF}' <<<"$out" | sed 's/^$/0/')"
}

run_backend() {
    local label=$1 url=$2
    echo
    echo "== $label: loading $HOUSEHOLDS households"
    DATABASE_URL=$url ./target/release/tavana demo-data --households "$HOUSEHOLDS"
    DATABASE_URL=$url ./target/release/tavana serve --bind "127.0.0.1:$PORT" >"$workdir/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do curl -fs "$BASE/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done

    local admin hoods facilitator ids_file
    admin=$(curl -fs "$BASE/api/v1/auth/token" -H 'content-type: application/json' \
        -d "{\"grant_type\":\"password\",\"username\":\"admin\",\"password\":\"$TAVANA_ADMIN_PASSWORD\"}" | json_field access_token)
    # A facilitator working in five of the fifteen neighbourhoods.
    hoods=$(curl -fs "$BASE/api/v1/areas?level=neighbourhood&limit=5" -H "Authorization: Bearer $admin" \
        | grep -oE '"id":"[^"]+","level":"neighbourhood"' | sed -E 's/"id":"([^"]+)".*/"\1"/' | paste -sd, -)
    local org
    org=$(curl -fs "$BASE/api/v1/organisations?kind=facilitation_office&limit=1" -H "Authorization: Bearer $admin" | json_field id)
    curl -fs -o /dev/null "$BASE/api/v1/users" -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
        -d "{\"username\":\"bench.facilitator\",\"display_name\":\"Bench\",\"password\":\"bench-facilitator-password\",\"role\":\"facilitator\",\"organisation_id\":\"$org\",\"areas\":[$hoods]}"
    facilitator=$(curl -fs "$BASE/api/v1/auth/token" -H 'content-type: application/json' \
        -d '{"grant_type":"password","username":"bench.facilitator","password":"bench-facilitator-password"}' | json_field access_token)

    ids_file="$workdir/ids-$label"
    local path="/api/v1/persons?limit=200"
    for _ in 1 2 3 4 5; do
        local page
        page=$(curl -fs "$BASE$path" -H "Authorization: Bearer $facilitator")
        grep -oE '"id":"[^"]+","national_id"' <<<"$page" | sed -E 's/"id":"([^"]+)".*/\1/' >>"$ids_file"
        local cursor
        cursor=$(grep -oE '"next_cursor":"[^"]+"' <<<"$page" | sed -E 's/.*:"([^"]+)"/\1/' || true)
        [ -n "$cursor" ] || break
        path="/api/v1/persons?limit=200&cursor=$cursor"
    done
    echo "$(wc -l <"$ids_file") person ids in the facilitator's scope sampled"

    printf '%-44s %10s %9s %9s %8s\n' "endpoint ($label, $CONNECTIONS connections)" "req/s" "p50" "p99" "non-2xx"
    wrk_row "GET /health/ready" "/health/ready" "$facilitator"
    IDS_FILE=$ids_file wrk_row "GET /api/v1/persons/{id}" "/" "$facilitator" bench/person-by-id.lua
    wrk_row "GET /api/v1/persons?woman_head=true&limit=50" "/api/v1/persons?woman_head=true&limit=50" "$facilitator"

    kill "$server" && wait "$server" 2>/dev/null || true
    server=""
}

BACKENDS=${BACKENDS:-sqlite postgres}
echo "Tavana registry benchmark: $HOUSEHOLDS households, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores"
if [[ " $BACKENDS " == *" sqlite "* ]]; then
    run_backend sqlite "sqlite://$workdir/bench.db"
fi

if [[ " $BACKENDS " != *" postgres "* ]]; then
    :
elif pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    name="tavana_bench_$$"
    psql -q "$BENCH_POSTGRES_URL" -c "CREATE DATABASE $name" >/dev/null
    pg_url="${BENCH_POSTGRES_URL%/*}/$name"
    run_backend postgres "$pg_url" || true
    psql -q "$BENCH_POSTGRES_URL" -c "DROP DATABASE $name WITH (FORCE)" >/dev/null
else
    echo "PostgreSQL is not answering on 127.0.0.1:5432: skipped"
fi
