//! The natural keys an import has read, each with the row it was first read in, so that a row
//! repeating an earlier one is reported with that row. Kept in memory up to a number of keys;
//! past it in a private temporary SQLite database (a file SQLite deletes when it is closed), so
//! that a file of any size holds bounded memory (unless SQLite's temporary folder, from
//! `SQLITE_TMPDIR`, `TMPDIR` or else `/var/tmp`, is itself in memory). All in memory, a million attendance keys would take about 120 MB (a
//! 48-byte slot each in a table of 2²¹, and the national ID's text), and past 3.7 million person
//! keys the table would double to 75 MB: a 4,000,000-row person import peaked at 209 MB, and at
//! 161 MB with the keys moved.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use crate::error::StoreError;

diesel::table! {
    seen (key) {
        key -> Binary,
        row_no -> BigInt,
    }
}

/// The temporary database's page cache; the rest of its keys are read from its file.
const CACHE_KIB: i64 = 16 * 1024;
/// Keys looked up in one `IN (…)` of the temporary database.
const LOOKUP_CHUNK: usize = 500;
/// Keys written in one statement (two bound values each, at most 32,766 a statement).
const INSERT_CHUNK: usize = 10_000;

/// What a row does with one of its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyUse {
    /// A later row with it repeats this one, and this one repeats an earlier row with it.
    Both,
    /// This row repeats an earlier one that recorded it.
    Probe,
    /// A later row that probes it repeats this one.
    Record,
}

/// A row's keys and its number.
pub(crate) struct RowKeys<K> {
    pub(crate) keys: Vec<(K, KeyUse)>,
    pub(crate) row: u32,
}

/// The earlier row a row repeats, and which of its keys it repeats (its place in the row's
/// keys), for the error's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Repeat {
    pub(crate) row: u32,
    pub(crate) key: usize,
}

/// Checks rows in order against `first` (each key's first row), recording the keys of those
/// that repeat none there; `recorded` is told each key recorded anew.
fn resolve<Q: Hash + Eq>(
    first: &mut HashMap<Q, u32>,
    rows: impl IntoIterator<Item = (Vec<(Q, KeyUse)>, u32)>,
    mut recorded: impl FnMut(&Q, u32),
) -> Vec<Option<Repeat>> {
    rows.into_iter()
        .map(|(keys, row)| {
            let repeats = keys
                .iter()
                .enumerate()
                .filter(|(_, (_, using))| *using != KeyUse::Record)
                .filter_map(|(key, (value, _))| {
                    Some(Repeat {
                        row: *first.get(value)?,
                        key,
                    })
                })
                .filter(|earlier| earlier.row != row)
                .min_by_key(|earlier| earlier.row);
            // A repeat is not applied, so it records nothing.
            for (key, using) in keys.into_iter().filter(|_| repeats.is_none()) {
                if using != KeyUse::Probe && !first.contains_key(&key) {
                    recorded(&key, row);
                    first.insert(key, row);
                }
            }
            repeats
        })
        .collect()
}

pub(crate) enum Seen<K> {
    Memory { keys: HashMap<K, u32>, limit: usize },
    Disk(SqliteConnection),
}

impl<K: Hash + Eq> Seen<K> {
    /// Keys in memory until there would be more than `limit` of them.
    pub(crate) fn new(limit: usize) -> Self {
        Seen::Memory {
            keys: HashMap::new(),
            limit,
        }
    }

    /// Whether the keys have moved to the temporary database.
    #[cfg(test)]
    fn on_disk(&self) -> bool {
        matches!(self, Seen::Disk(_))
    }

    /// Takes the keys of rows in the order they were read: for each row, the earlier row it
    /// repeats (the first of those that recorded one of the keys it probes) and by which key,
    /// or `None`; then, if it repeats none, its keys to record are recorded, unless an earlier
    /// row recorded them. A row is never a repeat of itself.
    pub(crate) fn check(
        &mut self,
        rows: Vec<RowKeys<K>>,
    ) -> Result<Vec<Option<Repeat>>, StoreError> {
        if let Seen::Memory { keys, limit } = self
            && keys.len() + rows.iter().map(|r| r.keys.len()).sum::<usize>() > *limit
        {
            let keys = std::mem::take(keys);
            *self = Seen::Disk(Self::to_disk(keys)?);
        }
        match self {
            Seen::Memory { keys, .. } => Ok(resolve(
                keys,
                rows.into_iter().map(|r| (r.keys, r.row)),
                |_, _| {},
            )),
            Seen::Disk(conn) => check_on_disk(conn, rows),
        }
    }

    fn to_disk(keys: HashMap<K, u32>) -> Result<SqliteConnection, StoreError> {
        // An empty name: a private database in a temporary file, deleted when it is closed.
        let mut conn = SqliteConnection::establish("")
            .map_err(|e| StoreError::Internal(format!("temporary key store: {e}")))?;
        conn.batch_execute(&format!(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -{CACHE_KIB};
             CREATE TABLE seen (key BLOB PRIMARY KEY, row_no INTEGER NOT NULL) WITHOUT ROWID;"
        ))?;
        // Written a chunk at a time: the keys of a whole map at once took more memory than the
        // map (86 MB for 1,800,000 person keys, held in 19 MB).
        let mut keys = keys.into_iter().peekable();
        while keys.peek().is_some() {
            let mut chunk: Vec<(Print, i64)> = keys
                .by_ref()
                .take(INSERT_CHUNK)
                .map(|(key, row)| (fingerprint(&key), i64::from(row)))
                .collect();
            chunk.sort_unstable();
            insert(&mut conn, &chunk)?;
        }
        Ok(conn)
    }
}

/// A key's fingerprint (see `fingerprint`).
type Print = [u8; 16];

fn check_on_disk<K: Hash>(
    conn: &mut SqliteConnection,
    rows: Vec<RowKeys<K>>,
) -> Result<Vec<Option<Repeat>>, StoreError> {
    let rows: Vec<(Vec<(Print, KeyUse)>, u32)> = rows
        .into_iter()
        .map(|r| {
            let keys = r.keys.iter().map(|(k, using)| (fingerprint(k), *using));
            (keys.collect(), r.row)
        })
        .collect();
    // Looked up in key order, so that each statement reads neighbouring pages.
    let mut sorted: Vec<&[u8]> = rows
        .iter()
        .flat_map(|(keys, _)| keys.iter().map(|(p, _)| p.as_slice()))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut first: HashMap<Print, u32> = HashMap::new();
    for chunk in sorted.chunks(LOOKUP_CHUNK) {
        let found = seen::table
            .filter(seen::key.eq_any(chunk))
            .select((seen::key, seen::row_no))
            .load::<(Vec<u8>, i64)>(conn)?;
        for (key, row) in found {
            let key = Print::try_from(key.as_slice())
                .map_err(|_| StoreError::Internal("a key of the wrong length".to_owned()))?;
            first.insert(key, u32::try_from(row).unwrap_or(u32::MAX));
        }
    }
    let mut new = Vec::new();
    let repeats = resolve(&mut first, rows, |print, row| {
        new.push((*print, i64::from(row)));
    });
    new.sort_unstable();
    insert(conn, &new)?;
    Ok(repeats)
}

fn insert(conn: &mut SqliteConnection, rows: &[(Print, i64)]) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        for chunk in rows.chunks(INSERT_CHUNK) {
            let values: Vec<_> = chunk
                .iter()
                .map(|(key, row)| (seen::key.eq(key.as_slice()), seen::row_no.eq(row)))
                .collect();
            diesel::insert_into(seen::table)
                .values(&values)
                .execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// 128 bits of the key, from SipHash under two prefixes (`DefaultHasher::new` has fixed keys, so
/// a key gives the same bits for the whole job). Two of the 28 million keys a 2 GiB file can
/// hold share them with a chance of about 10⁻²⁴.
fn fingerprint<K: Hash>(key: &K) -> Print {
    let mut print = [0; 16];
    for (prefix, half) in print.chunks_exact_mut(8).enumerate() {
        let mut hasher = DefaultHasher::new();
        prefix.hash(&mut hasher);
        key.hash(&mut hasher);
        half.copy_from_slice(&hasher.finish().to_be_bytes());
    }
    print
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rows` keys, `distinct` of them, with repeats near and far, in batches of `batch`.
    fn checked(rows: u32, distinct: u32, limit: usize, batch: usize) -> (Vec<Option<u32>>, bool) {
        let mut seen = Seen::new(limit);
        let keys: Vec<(String, u32)> = (1..=rows)
            .map(|row| (format!("key-{}", (row * 7919) % distinct), row))
            .collect();
        let mut out = Vec::new();
        for chunk in keys.chunks(batch) {
            out.extend(rows_of(seen.check(ones(chunk)).expect("checked")));
        }
        (out, seen.on_disk())
    }

    #[test]
    fn the_temporary_database_finds_the_same_repeats_as_memory() {
        let (in_memory, moved) = checked(2_000, 1_300, usize::MAX, 128);
        assert!(!moved);
        let repeats = in_memory.iter().filter(|r| r.is_some()).count();
        assert_eq!(repeats, 2_000 - 1_300);
        // Moved to disk at once, half-way through a batch's worth, and near the end.
        for limit in [0, 300, 1_200] {
            let (on_disk, moved) = checked(2_000, 1_300, limit, 128);
            assert!(moved, "limit {limit}");
            assert_eq!(on_disk, in_memory, "limit {limit}");
        }
        // More keys than one statement writes when they move.
        let (in_memory, _) = checked(30_000, 23_000, usize::MAX, 1_000);
        let (on_disk, moved) = checked(30_000, 23_000, 22_000, 1_000);
        assert!(moved);
        assert_eq!(on_disk, in_memory);
    }

    /// The rows repeated, without the keys.
    fn rows_of(repeats: Vec<Option<Repeat>>) -> Vec<Option<u32>> {
        repeats.into_iter().map(|r| r.map(|r| r.row)).collect()
    }

    fn ones<K: Clone>(keys: &[(K, u32)]) -> Vec<RowKeys<K>> {
        keys.iter()
            .map(|(key, row)| RowKeys {
                keys: vec![(key.clone(), KeyUse::Both)],
                row: *row,
            })
            .collect()
    }

    #[test]
    fn a_repeat_names_the_first_row_even_within_one_batch() {
        for limit in [usize::MAX, 0] {
            let mut seen = Seen::new(limit);
            let mut check = |rows| rows_of(seen.check(ones(rows)).expect("checked"));
            assert_eq!(
                check(&[(5u32, 2), (6, 3), (5, 4)]),
                vec![None, None, Some(2)]
            );
            assert_eq!(
                check(&[(6, 9), (7, 10), (5, 11)]),
                vec![Some(3), None, Some(2)]
            );
            // A row read again (a resumed job) is not a repeat of itself.
            assert_eq!(check(&[(7, 10)]), vec![None]);
        }
    }

    /// Keys only probed or only recorded: a relation that is not an equality (a household
    /// without a postal code is the one at its address with any code; two codes at one address
    /// are two homes).
    #[test]
    fn a_row_repeats_those_that_recorded_what_it_probes() {
        use KeyUse::{Both, Probe, Record};
        let bare = |address: &str, row| RowKeys {
            keys: vec![
                (format!("a:{address}"), Both),
                (format!("c:{address}"), Probe),
            ],
            row,
        };
        let coded = |code: &str, address: &str, row| RowKeys {
            keys: vec![
                (format!("p:{code}"), Both),
                (format!("a:{address}"), Probe),
                (format!("c:{address}"), Record),
            ],
            row,
        };
        for limit in [usize::MAX, 4, 0] {
            let mut seen = Seen::new(limit);
            let first = seen
                .check(vec![bare("x", 2), coded("P", "x", 3), coded("Q", "y", 4)])
                .expect("checked");
            // Row 3 repeats row 2 by its address (its second key).
            let by = |row, key| Some(Repeat { row, key });
            assert_eq!(first, vec![None, by(2, 1), None], "limit {limit}");
            let later = seen
                .check(vec![coded("R", "y", 5), bare("y", 6), coded("Q", "z", 7)])
                .expect("checked");
            assert_eq!(later, vec![None, by(4, 1), by(4, 0)], "limit {limit}");
            // Row 6 repeated row 4 and was not applied: its own keys name nothing.
            let last = seen.check(vec![coded("S", "y", 8)]).expect("checked");
            assert_eq!(last, vec![None], "limit {limit}");
        }
    }
}
