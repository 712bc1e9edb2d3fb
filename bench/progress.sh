#!/usr/bin/env bash
# The progress benchmark of issue 7: with 100,000 households and ~1,200,000 transitions loaded
# (`demo-data --full-history`: every household enrolled, twelve transitions each), measure
#   GET /api/v1/programmes/{WHH-1398}/progress            as an administrator (all neighbourhoods)
#   GET /api/v1/programmes/{WHH-1398}/progress?as_of=…    a past day
#   GET /api/v1/programmes/{WHH-1398}/progress            as a facilitator of five neighbourhoods
# on SQLite and, when a server answers, on PostgreSQL. Goal: p50 < 100 ms. Prints req/s, p50, p99.
#
#   bench/progress.sh
#   HOUSEHOLDS=20000 DURATION=5s BACKENDS=sqlite bench/progress.sh
set -euo pipefail
cd "$(dirname "$0")/.."

HOUSEHOLDS=${HOUSEHOLDS:-100000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-4}
THREADS=${THREADS:-2}
PORT=${PORT:-18183}
BASE="http://127.0.0.1:$PORT"
BENCH_POSTGRES_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
WHH=0169a6c0-0000-7000-8000-000000000001

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    (apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }) >&2 || true
    command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
fi

# shellcheck source=bench/lib.sh
source bench/lib.sh

wrk_row() {
    local name=$1 path=$2 token=$3
    local out
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $token" "$BASE$path")
    printf '%-52s %9s %9s %9s %8s\n' "$name" \
        "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")" \
        "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
        "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
        "$(awk '/Non-2xx/ {print $NF}' <<<"$out" | sed 's/^$/0/')"
}

run_backend() {
    local label=$1 url=$2
    echo
    echo "== $label: loading $HOUSEHOLDS households with full histories"
    DATABASE_URL=$url ./target/release/tavana demo-data --households "$HOUSEHOLDS" --full-history
    DATABASE_URL=$url ./target/release/tavana serve --bind "127.0.0.1:$PORT" >"$workdir/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do curl -fs "$BASE/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done

    local admin hoods org facilitator
    admin=$(curl -fs "$BASE/api/v1/auth/token" -H 'content-type: application/json' \
        -d "{\"grant_type\":\"password\",\"username\":\"admin\",\"password\":\"$TAVANA_ADMIN_PASSWORD\"}" | json_field access_token)
    hoods=$(curl -fs "$BASE/api/v1/areas?level=neighbourhood&limit=5" -H "Authorization: Bearer $admin" \
        | grep -oE '"id":"[^"]+","level":"neighbourhood"' | sed -E 's/"id":"([^"]+)".*/"\1"/' | paste -sd, -)
    org=$(curl -fs "$BASE/api/v1/organisations?kind=facilitation_office&limit=1" -H "Authorization: Bearer $admin" | json_field id)
    curl -fs -o /dev/null "$BASE/api/v1/users" -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
        -d "{\"username\":\"bench.facilitator\",\"display_name\":\"Bench\",\"password\":\"bench-facilitator-password\",\"role\":\"facilitator\",\"organisation_id\":\"$org\",\"areas\":[$hoods]}"
    facilitator=$(curl -fs "$BASE/api/v1/auth/token" -H 'content-type: application/json' \
        -d '{"grant_type":"password","username":"bench.facilitator","password":"bench-facilitator-password"}' | json_field access_token)

    local path="/api/v1/programmes/$WHH/progress"
    echo "enrolled (headline): $(curl -fs "$BASE$path" -H "Authorization: Bearer $admin" | grep -oE '"households_now":[0-9]+')"
    printf '%-52s %9s %9s %9s %8s\n' "endpoint ($label, $CONNECTIONS connections)" "req/s" "p50" "p99" "non-2xx"
    wrk_row "GET /health/ready" "/health/ready" "$admin"
    wrk_row "GET progress (administrator, today)" "$path" "$admin"
    wrk_row "GET progress?as_of=1398-09-01 (administrator)" "$path?as_of=1398-09-01" "$admin"
    wrk_row "GET progress (facilitator, 5 neighbourhoods)" "$path" "$facilitator"
    wrk_row "GET /api/v1/statistics (administrator)" "/api/v1/statistics" "$admin"

    kill "$server" && wait "$server" 2>/dev/null || true
    server=""
}

BACKENDS=${BACKENDS:-sqlite postgres}
echo "Tavana progress benchmark: $HOUSEHOLDS households, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores"
if [[ " $BACKENDS " == *" sqlite "* ]]; then
    run_backend sqlite "sqlite://$workdir/bench.db"
fi
if [[ " $BACKENDS " != *" postgres "* ]]; then
    :
elif pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    name="tavana_progress_$$"
    psql -q "$BENCH_POSTGRES_URL" -c "CREATE DATABASE $name" >/dev/null
    pg_url="${BENCH_POSTGRES_URL%/*}/$name"
    run_backend postgres "$pg_url" || true
    psql -q "$BENCH_POSTGRES_URL" -c "DROP DATABASE $name WITH (FORCE)" >/dev/null
else
    echo "PostgreSQL is not answering on 127.0.0.1:5432: skipped"
fi
