//! Cursor pages: read one row more than asked, to know whether another page follows.

/// How many rows to read for a page of `limit`.
pub(crate) fn fetch(limit: usize) -> i64 {
    i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)
}

/// The page and whether more rows follow it.
pub(crate) fn split<T>(mut rows: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    (rows, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_row_means_another_page() {
        assert_eq!(fetch(50), 51);
        assert_eq!(split(vec![1, 2, 3], 2), (vec![1, 2], true));
        assert_eq!(split(vec![1, 2], 2), (vec![1, 2], false));
    }
}
