#!/usr/bin/env bash
# The floor under the person import on SQLite: the same number of rows written straight into
# Tavana's own persons, household_memberships and changes tables (every index and constraint of the
# migrations, no validation, no duplicate queue, no HTTP), in batches of 5,000 per transaction with
# the import's 16 MB page cache. Prints rows per second every 200,000 rows, with and without the
# index that finds possible duplicates (last name, first name, birth date).
#
#   bench/import-floor.sh            # 1,000,000 rows
#   ROWS=200000 bench/import-floor.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
for f in migrations/sqlite/*/up.sql; do sqlite3 "$workdir/schema.db" < "$f"; done

run() {
    local label=$1 drop=$2
    cp "$workdir/schema.db" "$workdir/run.db"
    echo "== $label"
    python3 - "$workdir/run.db" "$drop" "$ROWS" <<'PY'
import random, sqlite3, sys, time
path, drop, total = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
random.seed(1398)
db = sqlite3.connect(path, isolation_level=None)
for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "cache_size = -16384"):
    db.execute(f"PRAGMA {pragma}")
if drop:
    db.execute("DROP INDEX persons_duplicate_idx")
first = [f"first{i}" for i in range(60)]
last = [f"last{i}" for i in range(80)]
households = [f"0193{i:04d}-0000-7000-8000-000000000000" for i in range(1000)]
at = "2026-11-26 00:00:00"
started, done = time.time(), 0
while done < total:
    persons, memberships, changes = [], [], []
    for n in range(done, min(total, done + 5000)):
        pid = f"0194{n:08d}-0000-7000-8000-000000000000"
        f, l = random.choice(first), random.choice(last)
        born = f"{random.randint(1951, 2000)}-{random.randint(1, 12):02d}-{random.randint(1, 28):02d}"
        home = households[n % len(households)]
        persons.append((pid, f"{1000000000 + n}", f, l, f, l, born, "female", None, None, home,
                        "other", "n1", None, 1, at, at))
        memberships.append((f"0195{n:08d}-0000-7000-8000-000000000000", pid, home, "other",
                            "2020-01-01", None, None, at))
        changes.append(("person", pid, "created", at))
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO persons VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", persons)
    db.executemany("INSERT INTO household_memberships (id, person_id, household_id, role, "
                   "started_on, ended_on, reason, recorded_at) VALUES (?,?,?,?,?,?,?,?)", memberships)
    db.executemany("INSERT INTO changes (entity, entity_id, op, changed_at) VALUES (?,?,?,?)", changes)
    db.execute("COMMIT")
    done += len(persons)
    if done % 200000 == 0 or done == total:
        print(f"{done} rows: {done / (time.time() - started):.0f} rows/s", flush=True)
PY
}
run "all the migrations' indexes" 0
run "without persons_duplicate_idx" 1
