//! Numbered series (`certificate:1403`, `permit:1403`): gap-free within committed work, never
//! handed out twice, even to transactions racing on two connections.

use diesel::prelude::*;

use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::counters;

/// Takes the next number of `series` (1 for a new series). Call it inside the write transaction
/// that uses the number: the row stays locked until that transaction ends.
pub fn next(conn: &mut DbConnection, series: &str) -> Result<i64, StoreError> {
    // The advisory lock covers the first number of a series, when there is no row to lock yet.
    crate::tx::lock(conn, &format!("counter:{series}"))?;
    let bumped: Option<(String, i64)> = diesel::update(counters::table.find(series))
        .set(counters::value.eq(counters::value + 1))
        .returning(counters::all_columns)
        .get_result(conn)
        .optional()?;
    if let Some((_, value)) = bumped {
        return Ok(value);
    }
    diesel::insert_into(counters::table)
        .values((counters::name.eq(series), counters::value.eq(1_i64)))
        .execute(conn)?;
    Ok(1)
}
