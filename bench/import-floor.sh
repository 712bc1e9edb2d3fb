#!/usr/bin/env bash
# The floor under the person import: the same person rows as bench/import.sh (its names and birth
# years, from bench/persons.py) written straight into Tavana's own persons, household_memberships
# and changes tables by the database itself (every index, constraint and foreign key of the
# migrations; no validation, no duplicate queue, no client, no HTTP), one INSERT … SELECT per table
# and transaction, in transactions of the import's own size: on SQLite the import takes batches
# into one transaction for 2 s (about 50,000 rows), on PostgreSQL one batch of 10,000. The rows
# are loaded into a side table first (not timed), so nothing but the database's own work is timed.
# Prints rows per second per backend, also with persons_duplicate_idx dropped (the index the
# possible-duplicate check needs), on PostgreSQL with the foreign keys dropped, and with the
# import's own possible-duplicate statement run in each transaction (the floor under all the
# import writes).
#
#   bench/import-floor.sh                      # 1,000,000 rows, both backends
#   ROWS=200000 BATCH=5000 BACKENDS=sqlite bench/import-floor.sh
#
# VARIANTS=parts runs instead what each part of a person's write costs, for a schema decision:
# every index and foreign key, then without the foreign keys (SQLite: PRAGMA foreign_keys = OFF;
# PostgreSQL: those of persons, household_memberships and duplicate_candidates dropped), without
# the membership row, without the changes row, with only the persons row and no foreign keys,
# and the duplicate queue with and without the foreign keys.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
BACKENDS=${BACKENDS:-sqlite postgres}
BENCH_POSTGRES_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

# Ids as the service makes them (UUID v7 text, in creation order); 1,000 households in 15
# neighbourhoods of 5 districts, as the demo data the import bench imports into.
seed_sql() {
    echo "INSERT INTO areas VALUES ('p', NULL, 'province', 'P', 'p', 'p', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00');"
    echo "INSERT INTO areas VALUES ('c', 'p', 'city', 'C', 'c', 'c', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00');"
    for d in 0 1 2 3 4; do
        echo "INSERT INTO areas VALUES ('d$d', 'c', 'district', 'D$d', 'd$d', 'd$d', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00');"
    done
    for n in $(seq 0 14); do
        echo "INSERT INTO areas VALUES ('n$n', 'd$((n / 3))', 'neighbourhood', 'N$n', 'n$n', 'n$n', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00');"
    done
}

# One transaction; $1 is the backend, $2 and $3 its first and last row of the side table, $4
# "queue" to queue possible duplicates too.
batch_sql() {
    local person membership household neighbourhood="'n' || ((n % 1000) % 15)"
    case $1 in
        sqlite)
            person="printf('0194%08d-0000-7000-8000-000000000000', n)"
            membership="printf('0195%08d-0000-7000-8000-000000000000', n)"
            household="printf('0193%04d-0000-7000-8000-000000000000', n % 1000)"
            echo "BEGIN IMMEDIATE;"
            ;;
        postgres)
            person="format('0194%s-0000-7000-8000-000000000000', lpad(n::text, 8, '0'))"
            membership="format('0195%s-0000-7000-8000-000000000000', lpad(n::text, 8, '0'))"
            household="format('0193%s-0000-7000-8000-000000000000', lpad((n % 1000)::text, 4, '0'))"
            echo "BEGIN;"
            ;;
    esac
    cat <<SQL
INSERT INTO persons (id, national_id, first_name, last_name, first_name_normalised,
    last_name_normalised, birth_date, sex, household_id, household_role, neighbourhood_id, version,
    created_at, updated_at)
SELECT $person, (1000000000 + n) || '', f, l, f, l, b, 'female', $household, 'other', $neighbourhood, 1,
    '2026-11-26 00:00:00', '2026-11-26 00:00:00'
FROM bench_rows WHERE n BETWEEN $2 AND $3;
SQL
    [ -n "${SKIP_MEMBERSHIP:-}" ] || cat <<SQL
INSERT INTO household_memberships (id, person_id, household_id, role, started_on, recorded_at)
SELECT $membership, $person, $household, 'other', '2020-01-01', '2026-11-26 00:00:00'
FROM bench_rows WHERE n BETWEEN $2 AND $3;
SQL
    [ -n "${SKIP_CHANGES:-}" ] || cat <<SQL
INSERT INTO changes (entity, entity_id, op, changed_at)
SELECT 'person', $person, 'created', '2026-11-26 00:00:00' FROM bench_rows WHERE n BETWEEN $2 AND $3;
SQL
    [ "${4:-}" = queue ] && queue_sql "$1" "$(id_of "$1" "$2")" "$(id_of "$1" "$3")"
    echo "COMMIT;"
}

id_of() { printf '0194%08d-0000-7000-8000-000000000000' "$2"; }

# The import's possible-duplicate statement (queue_duplicates in crates/persistence/src/imports.rs)
# for the persons of ids $2 to $3, read from persons instead of sent by the client.
queue_sql() {
    local same_year in_batch
    case $1 in
        sqlite)
            same_year="o.birth_date >= substr(new.birth_date, 1, 4) || '-01-01'
                AND o.birth_date <= substr(new.birth_date, 1, 4) || '-12-31'"
            in_batch="o.id IN (SELECT id FROM new)"
            ;;
        postgres)
            same_year="o.birth_date >= date_trunc('year', new.birth_date)::date
                AND o.birth_date < (date_trunc('year', new.birth_date) + interval '1 year')::date"
            in_batch="o.id BETWEEN '$2' AND '$3'"
            ;;
    esac
    local candidates="SELECT o.id FROM persons o
             JOIN areas o_area ON o_area.id = o.neighbourhood_id
             WHERE o.last_name_normalised = new.last_name_normalised
               AND o.first_name_normalised = new.first_name_normalised
               AND $same_year
               AND o_area.parent_id = new_area.parent_id
               AND o.id <> new.id
               AND (o.id < new.id OR NOT $in_batch)
             LIMIT 20"
    echo "INSERT INTO duplicate_candidates (person_id, candidate_id, neighbourhood_id, status, detected_at)"
    case $1 in
        sqlite) cat <<SQL
WITH new AS MATERIALIZED (SELECT id, last_name_normalised, first_name_normalised, birth_date,
        neighbourhood_id FROM persons WHERE id BETWEEN '$2' AND '$3')
SELECT new.id, other.id, new.neighbourhood_id, 'open', '2026-11-26 00:00:00'
FROM new
JOIN areas new_area ON new_area.id = new.neighbourhood_id
JOIN persons other ON other.id IN ($candidates);
SQL
            ;;
        postgres) cat <<SQL
SELECT new.id, other.id, new.neighbourhood_id, 'open', '2026-11-26 00:00:00'
FROM persons new
JOIN areas new_area ON new_area.id = new.neighbourhood_id
CROSS JOIN LATERAL ($candidates) other
WHERE new.id BETWEEN '$2' AND '$3';
SQL
            ;;
    esac
}

households_sql() {
    case $1 in
        sqlite) echo "WITH RECURSIVE c(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM c WHERE n < 999)
INSERT INTO households SELECT printf('0193%04d-0000-7000-8000-000000000000', n), 'n' || (n % 15), 'a', 'a', NULL, 1,
    '2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM c;" ;;
        postgres) echo "INSERT INTO households SELECT format('0193%s-0000-7000-8000-000000000000', lpad(n::text, 4, '0')),
    'n' || (n % 15), 'a', 'a', NULL, 1, '2026-01-01', '2026-01-01' FROM generate_series(0, 999) n;" ;;
    esac
}

all_batches() {
    local first batch=${BATCH:-$([ "$1" = sqlite ] && echo 50000 || echo 10000)}
    for ((first = 0; first < ROWS; first += batch)); do
        batch_sql "$1" "$first" $((first + batch - 1)) "${2:-}"
    done
}

timed() {
    local label=$1 started finished
    shift
    started=$(date +%s.%N)
    "$@"
    finished=$(date +%s.%N)
    python3 -c "print(f'  $label: {$ROWS / ($finished - $started):,.0f} rows/s ({$finished - $started:.1f} s)')"
}

db="$workdir/floor.db"
rows_csv="$workdir/rows.csv"
python3 bench/persons.py /dev/null "$rows_csv" "$ROWS" --floor
url="${BENCH_POSTGRES_URL%/*}/tavana_floor"

# A fresh schema, with one index or the foreign keys dropped when asked.
sqlite_setup() {
    rm -f "$db" "$db-wal" "$db-shm"
    for f in migrations/sqlite/*/up.sql; do sqlite3 "$db" <"$f"; done
    { seed_sql; households_sql sqlite; } | sqlite3 "$db"
    sqlite3 "$db" "CREATE TABLE bench_rows (n INTEGER PRIMARY KEY, f TEXT, l TEXT, b TEXT)" ".import --csv $rows_csv bench_rows"
    [ -z "$1" ] || sqlite3 "$db" "DROP INDEX $1"
}
sqlite_load() {
    # The service's connection settings and the import's page cache.
    { echo "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ${SQLITE_FOREIGN_KEYS:-ON};"
      echo "PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;"
      all_batches sqlite "${1:-}"; } | sqlite3 -bail "$db" >/dev/null
}
postgres_setup() {
    psql -q "$BENCH_POSTGRES_URL" -c "DROP DATABASE IF EXISTS tavana_floor WITH (FORCE)" -c "CREATE DATABASE tavana_floor" >/dev/null 2>&1
    for f in migrations/postgres/*/up.sql; do psql -q "$url" -f "$f" >/dev/null; done
    { seed_sql; households_sql postgres; } | psql -q "$url" >/dev/null
    psql -q "$url" -c "CREATE TABLE bench_rows (n INTEGER PRIMARY KEY, f TEXT, l TEXT, b DATE)" \
        -c "\\copy bench_rows FROM '$rows_csv' WITH (FORMAT csv)" -c "ANALYZE bench_rows" >/dev/null
    case $1 in
        "") ;;
        fk) psql -q "$url" -c "ALTER TABLE persons DROP CONSTRAINT persons_household_id_fkey, DROP CONSTRAINT persons_neighbourhood_id_fkey" \
                -c "ALTER TABLE household_memberships DROP CONSTRAINT household_memberships_person_id_fkey, DROP CONSTRAINT household_memberships_household_id_fkey" \
                -c "ALTER TABLE duplicate_candidates DROP CONSTRAINT duplicate_candidates_person_id_fkey, DROP CONSTRAINT duplicate_candidates_candidate_id_fkey, DROP CONSTRAINT duplicate_candidates_neighbourhood_id_fkey" >/dev/null ;;
        *) psql -q "$url" -c "DROP INDEX $1" >/dev/null ;;
    esac
}
postgres_load() { all_batches postgres "${1:-}" | psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null; }

echo "Import floor: $ROWS person rows, $(nproc) cores"
# One part of a person's write left out: $1 the backend, $2 the label, $3 what setup drops
# ("fk": the foreign keys), then the flags, then "queue" or nothing.
part() {
    local backend=$1 label=$2 drop=$3 flags=$4 queue=${5:-}
    [ "$backend" = sqlite ] && [ "$drop" = fk ] && flags="$flags SQLITE_FOREIGN_KEYS=OFF" && drop=""
    "${backend}_setup" "$drop"
    # shellcheck disable=SC2086 # the flags are words of NAME=value
    timed "$label" env $flags bash -c "$(declare -f batch_sql id_of queue_sql all_batches ${backend}_load); ${backend}_load $queue"
}
if [ "${VARIANTS:-}" = parts ]; then
    export ROWS db url
    for backend in $BACKENDS; do
        [ "$backend" = postgres ] && ! pg_isready -q -d "$BENCH_POSTGRES_URL" && echo "postgres: not answering; not run" >&2 && continue
        echo "== $backend (transactions of ${BATCH:-$([ "$backend" = sqlite ] && echo 50000 || echo 10000)} rows)"
        part "$backend" "every index and foreign key" "" ""
        part "$backend" "without the foreign keys" fk ""
        part "$backend" "without the membership row" "" "SKIP_MEMBERSHIP=1"
        part "$backend" "without the changes row" "" "SKIP_CHANGES=1"
        part "$backend" "the persons row alone, no foreign keys" fk "SKIP_MEMBERSHIP=1 SKIP_CHANGES=1"
        part "$backend" "everything, with the possible-duplicate queue" "" "" queue
        part "$backend" "everything and the queue, no foreign keys" fk "" queue
    done
    if [[ " $BACKENDS " == *" postgres "* ]] && pg_isready -q -d "$BENCH_POSTGRES_URL"; then
        psql -q "$BENCH_POSTGRES_URL" -c "DROP DATABASE IF EXISTS tavana_floor WITH (FORCE)" >/dev/null
    fi
    exit 0
fi
if [[ " $BACKENDS " == *" sqlite "* ]]; then
    echo "== sqlite (transactions of ${BATCH:-50000} rows)"
    sqlite_setup "" && timed "every index" sqlite_load
    sqlite_setup persons_duplicate_idx && timed "without persons_duplicate_idx" sqlite_load
    sqlite_setup "" && timed "every index, with the possible-duplicate queue" sqlite_load queue
    echo "  possible duplicates queued: $(sqlite3 "$db" "SELECT count(*) FROM duplicate_candidates")"
fi
if [[ " $BACKENDS " == *" postgres "* ]] && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "== postgres (transactions of ${BATCH:-10000} rows)"
    postgres_setup "" && timed "every index" postgres_load
    postgres_setup persons_duplicate_idx && timed "without persons_duplicate_idx" postgres_load
    postgres_setup fk && timed "without the foreign keys" postgres_load
    postgres_setup "" && timed "every index, with the possible-duplicate queue" postgres_load queue
    echo "  possible duplicates queued: $(psql -qAt "$url" -c "SELECT count(*) FROM duplicate_candidates")"
    psql -q "$BENCH_POSTGRES_URL" -c "DROP DATABASE tavana_floor WITH (FORCE)" >/dev/null
fi
