//! Fixed-window request counters for the general rate limit.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;

use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::rate_limit_windows as windows;

/// Counts one request of `key` in the window starting at `window_start`; returns the count so
/// far. The first hit of a new window removes the key's older windows.
pub fn hit(
    conn: &mut DbConnection,
    key: &str,
    window_start: NaiveDateTime,
) -> Result<i64, StoreError> {
    let row = (
        windows::key.eq(key),
        windows::window_start.eq(window_start),
        windows::hits.eq(1_i64),
    );
    // Upserts do not go through the two-backend connection: one statement per backend.
    let hits: i64 = match conn {
        DbConnection::Pg(pg) => diesel::insert_into(windows::table)
            .values(row)
            .on_conflict((windows::key, windows::window_start))
            .do_update()
            .set(windows::hits.eq(windows::hits + excluded(windows::hits)))
            .returning(windows::hits)
            .get_result(pg)?,
        DbConnection::Sqlite(sqlite) => diesel::insert_into(windows::table)
            .values(row)
            .on_conflict((windows::key, windows::window_start))
            .do_update()
            .set(windows::hits.eq(windows::hits + excluded(windows::hits)))
            .returning(windows::hits)
            .get_result(sqlite)?,
    };
    if hits == 1 {
        diesel::delete(
            windows::table
                .filter(windows::key.eq(key))
                .filter(windows::window_start.lt(window_start)),
        )
        .execute(conn)?;
    }
    Ok(hits)
}
