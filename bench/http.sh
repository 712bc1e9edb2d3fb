#!/usr/bin/env bash
# Requests per second and p50/p99 latency of /health/ready and of a database-backed JSON list.
#
#   bench/http.sh                       # SQLite in a temporary folder
#   DATABASE_URL=postgres://… bench/http.sh
#
# Tunables: DURATION (default 10s), CONNECTIONS (32), THREADS (2), PORT (18181), BIN (a binary to
# measure instead of building this checkout, e.g. to compare two builds).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-18181}
BASE="http://127.0.0.1:$PORT"

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    if command -v apt-get >/dev/null; then
        (apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }) >&2
    fi
    command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
fi

# BIN: a binary to measure instead of this checkout's release build (to compare two builds).
BIN=${BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet --bin tavana
    BIN=./target/release/tavana
fi
workdir=$(mktemp -d)
export DATABASE_URL="${DATABASE_URL:-sqlite://$workdir/bench.db}"
export TAVANA_JWT_SECRET="${TAVANA_JWT_SECRET:-bench-signing-key-of-at-least-32-bytes}"
# Used only if the database has no users yet; otherwise set BENCH_USER/BENCH_PASSWORD.
export TAVANA_ADMIN_PASSWORD="${TAVANA_ADMIN_PASSWORD:-bench-admin-password}"
BENCH_USER=${BENCH_USER:-admin}
BENCH_PASSWORD=${BENCH_PASSWORD:-$TAVANA_ADMIN_PASSWORD}
"$BIN" serve --bind "127.0.0.1:$PORT" --log off >"$workdir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$workdir"' EXIT

for _ in $(seq 1 100); do
    curl -fs "$BASE/health/ready" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "$BASE/health/ready" >/dev/null || { cat "$workdir/server.log" >&2; exit 1; }

token=$(curl -fs "$BASE/api/v1/auth/token" -H 'content-type: application/json' \
    -d "{\"grant_type\":\"password\",\"username\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" \
    | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
[ -n "$token" ] || { echo "cannot log in as $BENCH_USER" >&2; exit 1; }
AUTH="Authorization: Bearer $token"

# Seed: a province and 200 cities under it, so the list reads a full page of 50 rows.
suffix=$(date +%s%N | tail -c 7)
province=$(curl -fs -X POST "$BASE/api/v1/areas" -H "$AUTH" -H 'content-type: application/json' \
    -d "{\"level\":\"province\",\"code\":\"BENCH-$suffix\",\"name_fa\":\"خراسان رضوی\",\"name_en\":\"Khorasan Razavi\"}" \
    | sed -E 's/.*"id":"([^"]+)".*/\1/')
for i in $(seq 1 200); do
    curl -fs -o /dev/null -X POST "$BASE/api/v1/areas" -H "$AUTH" -H 'content-type: application/json' \
        -d "{\"level\":\"city\",\"parent_id\":\"$province\",\"code\":\"B$suffix-$i\",\"name_fa\":\"شهر $i\",\"name_en\":\"City $i\"}"
done

run() {
    local name=$1 path=$2 out
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "$AUTH" "$BASE$path")
    local rps p50 p99 non2xx
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    printf '%-34s %12s %10s %10s %10s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

backend=${DATABASE_URL%%:*}
echo "Tavana HTTP benchmark: backend=$backend, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores"
printf '%-34s %12s %10s %10s %10s\n' "endpoint" "req/s" "p50" "p99" "non-2xx"
run "GET /health/ready" "/health/ready"
run "GET /api/v1/areas?level=city&limit=50" "/api/v1/areas?level=city&limit=50"
