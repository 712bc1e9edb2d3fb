//! Both migration folders hold the same migrations, and each round-trips up → down → up.

use std::collections::BTreeSet;
use std::path::Path;

use diesel::connection::SimpleConnection;
use tavana_persistence::db::Backend;
use tavana_persistence::migrations::{revert_all, run_pending};

use crate::helpers::{
    create_empty_postgres_database, drop_postgres_database, postgres_admin_url, with_database,
};

fn migration_names(backend: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    std::fs::read_dir(&dir)
        .expect("migrations folder")
        .map(|entry| {
            let path = entry.expect("entry").path();
            assert!(
                path.join("up.sql").is_file(),
                "{} has up.sql",
                path.display()
            );
            assert!(
                path.join("down.sql").is_file(),
                "{} has down.sql",
                path.display()
            );
            path.file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn both_backends_have_the_same_migrations() {
    let postgres = migration_names("postgres");
    let sqlite = migration_names("sqlite");
    assert!(!postgres.is_empty());
    assert_eq!(
        postgres, sqlite,
        "migrations/postgres and migrations/sqlite must hold the same migration folders"
    );
}

fn round_trip(url: &str) {
    let backend = Backend::from_url(url).expect("url");
    let mut conn = backend.connect().expect("connect");
    let applied = run_pending(&mut conn).expect("up");
    assert_eq!(applied.len(), migration_names("postgres").len());
    conn.batch_execute("SELECT id FROM areas")
        .expect("areas exists after up");

    let reverted = revert_all(&mut conn).expect("down");
    assert_eq!(reverted.len(), applied.len());
    assert!(
        conn.batch_execute("SELECT id FROM areas").is_err(),
        "areas is gone after down"
    );

    let reapplied = run_pending(&mut conn).expect("up again");
    assert_eq!(reapplied, applied);
    conn.batch_execute("SELECT id FROM areas")
        .expect("areas exists again");
    assert!(run_pending(&mut conn).expect("idempotent").is_empty());
}

#[test]
fn sqlite_migrations_round_trip() {
    let dir = tempfile::tempdir().expect("temporary folder");
    round_trip(&format!("sqlite://{}/roundtrip.db", dir.path().display()));
}

#[test]
fn postgres_migrations_round_trip() {
    let Some(admin_url) = postgres_admin_url() else {
        return;
    };
    let name = create_empty_postgres_database(&admin_url);
    let result = std::panic::catch_unwind(|| round_trip(&with_database(&admin_url, &name)));
    drop_postgres_database(&admin_url, &name);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
