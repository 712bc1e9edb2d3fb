//! The `tavana` binary: start-up failures are one clear line and a non-zero exit, never a panic.

use std::process::Command;

fn tavana(args: &[&str], database_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tavana"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env(
            "TAVANA_JWT_SECRET",
            "cli-test-signing-key-of-32-bytes-or-more",
        )
        .env("TAVANA_LOG", "off")
        .output()
        .expect("tavana runs")
}

/// The standard output of a run that must have succeeded.
fn succeeded(output: std::process::Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn one_line_error(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "exits non-zero");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("tavana: error: "), "{stderr}");
    stderr
}

#[test]
fn unreachable_postgres_is_a_one_line_error() {
    // Port 1 on loopback: nothing listens there.
    for command in [&["migrate"][..], &["serve", "--bind", "127.0.0.1:0"][..]] {
        let output = tavana(command, "postgres://tavana:secret@127.0.0.1:1/tavana");
        let stderr = one_line_error(&output);
        assert!(
            stderr.contains("cannot connect to the postgres database"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("secret"),
            "the password is not printed: {stderr}"
        );
    }
}

#[test]
fn postgres_without_a_signing_key_is_a_one_line_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_tavana"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", "postgres://tavana@127.0.0.1:1/tavana")
        .env_remove("TAVANA_JWT_SECRET")
        .env("TAVANA_LOG", "off")
        .output()
        .expect("tavana runs");
    let stderr = one_line_error(&output);
    assert!(stderr.contains("TAVANA_JWT_SECRET"), "{stderr}");
}

#[test]
fn unknown_database_scheme_is_a_one_line_error() {
    let stderr = one_line_error(&tavana(&["migrate"], "mysql://localhost/tavana"));
    assert!(
        stderr.contains("unsupported database URL scheme `mysql`"),
        "{stderr}"
    );
}

#[test]
fn bad_cors_origin_is_a_one_line_error() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let output = tavana(
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--cors-origins",
            "app.example",
        ],
        &url,
    );
    let stderr = one_line_error(&output);
    assert!(stderr.contains("CORS origin"), "{stderr}");
}

#[test]
fn migrate_creates_the_sqlite_file_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}/nested/data/tavana.db", dir.path().display());
    let first = tavana(&["migrate"], &url);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied"));
    assert!(dir.path().join("nested/data/tavana.db").is_file());
    let second = tavana(&["migrate"], &url);
    assert!(second.status.success());
    assert_eq!(
        String::from_utf8_lossy(&second.stdout).trim(),
        "database is up to date"
    );
}

#[test]
fn openapi_command_prints_the_spec_without_a_database() {
    let output = tavana(&["openapi"], "postgres://nobody@127.0.0.1:1/none");
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        printed,
        serde_json::to_value(tavana_http::openapi()).expect("json")
    );
}

/// SIGTERM while a request is half sent: the request is still answered, then the process exits 0.
#[test]
fn sigterm_finishes_in_flight_requests() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("temporary folder");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tavana"))
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--workers",
            "1",
        ])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/t.db", dir.path().display()),
        )
        .env("TAVANA_LOG_FORMAT", "text")
        .env("TAVANA_ADMIN_PASSWORD", "sigterm-admin-password")
        .stderr(Stdio::piped())
        .spawn()
        .expect("tavana starts");

    // Wait until it listens.
    let started = Instant::now();
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("server did not start: {e}"),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");

    let body =
        r#"{"grant_type":"password","username":"admin","password":"sigterm-admin-password"}"#;
    let head = format!(
        "POST /api/v1/auth/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("head sent");
    stream
        .write_all(&body.as_bytes()[..10])
        .expect("part of the body sent");
    stream.flush().expect("flush");
    // Time for the server to read the head even on a loaded machine: only a request it has
    // begun is one it must finish.
    std::thread::sleep(Duration::from_millis(1000));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));

    stream
        .write_all(&body.as_bytes()[10..])
        .expect("rest of the body sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("access_token"), "{response}");

    let exit = child.wait().expect("exits");
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
    let stderr = child.stderr.take().expect("stderr");
    let lines: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("Tavana stopped")),
        "{lines:?}"
    );
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/tavana.db", dir.path().display())
}

#[test]
fn create_user_prints_a_generated_password_once_and_refuses_duplicates() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = sqlite_url(&dir);
    let output = tavana(
        &[
            "create-user",
            "--username",
            "Programme.Lead",
            "--role",
            "programme_manager",
        ],
        &url,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("created programme.lead (programme_manager)"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("password: ") && l.len() > 40),
        "{stdout}"
    );

    let again = tavana(
        &[
            "create-user",
            "--username",
            "programme.lead",
            "--role",
            "auditor",
        ],
        &url,
    );
    let stderr = one_line_error(&again);
    assert!(stderr.contains("taken"), "{stderr}");
    let scoped = tavana(
        &[
            "create-user",
            "--username",
            "facilitator1",
            "--role",
            "facilitator",
        ],
        &url,
    );
    assert!(one_line_error(&scoped).contains("--area"));
}

/// Runs `audit verify`, tampers with one row behind the service's back, and runs it again.
#[test]
fn audit_verify_detects_an_edited_row() {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};

    let dir = tempfile::tempdir().expect("temporary folder");
    let url = sqlite_url(&dir);
    for name in ["auditor.one", "auditor.two", "auditor.three"] {
        let output = tavana(
            &["create-user", "--username", name, "--role", "auditor"],
            &url,
        );
        assert!(output.status.success());
    }
    let output = tavana(&["audit", "verify"], &url);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One organisation and three users.
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "audit chain intact: 4 rows"
    );

    let path = dir.path().join("tavana.db");
    let mut conn = SqliteConnection::establish(&path.to_string_lossy()).expect("open");
    conn.batch_execute(
        "UPDATE audit_log SET after_json = replace(after_json, 'auditor.two', 'auditor.evil') WHERE seq = 3",
    )
    .expect("tamper");
    drop(conn);
    let stderr = one_line_error(&tavana(&["audit", "verify"], &url));
    assert!(stderr.contains("audit chain broken at row 3"), "{stderr}");
    assert!(stderr.contains("edited"), "{stderr}");
}

/// First start: an administrator is created with the configured password, which then logs in;
/// neither that password nor a wrong one appears in the (debug-level) logs. The generated signing
/// key is kept beside the database, readable by its owner only.
#[test]
fn first_start_creates_the_admin_and_never_logs_passwords() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("temporary folder");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let admin_password = "first-admin-password-7731";
    let wrong_password = "wrong-password-4419-typo";
    let child = Command::new(env!("CARGO_BIN_EXE_tavana"))
        .args(["--bind", &format!("127.0.0.1:{port}"), "--workers", "1"])
        .env("DATABASE_URL", sqlite_url(&dir))
        .env_remove("TAVANA_JWT_SECRET")
        .env("TAVANA_ADMIN_PASSWORD", admin_password)
        .env("TAVANA_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tavana starts");

    let post = |body: &str| -> String {
        let started = Instant::now();
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => break stream,
                Err(_) if started.elapsed() < Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("server did not start: {e}"),
            }
        };
        let request = format!(
            "POST /api/v1/auth/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
    };
    let ok = post(&format!(
        r#"{{"grant_type":"password","username":"admin","password":"{admin_password}"}}"#
    ));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let refused = post(&format!(
        r#"{{"grant_type":"password","username":"admin","password":"{wrong_password}"}}"#
    ));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    let key = dir.path().join("jwt-signing.key");
    assert!(
        key.is_file(),
        "a signing key was generated beside the database"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the owner may read the key");
    }

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().expect("exits");
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(logs.contains("created the first administrator"), "{logs}");
    assert!(
        !logs.contains(admin_password),
        "the configured password is not echoed"
    );
    assert!(
        !logs.contains(wrong_password),
        "a wrong password is not logged"
    );
}

/// A command-line test run on each backend, as `name::sqlite` and `name::postgres`: `name(url,
/// dir)` gets the database's URL and a folder for its files. On PostgreSQL the database is new
/// (the command migrates it) and dropped after.
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().expect("temporary folder");
                super::$name(&super::sqlite_url(&dir), &dir);
            }

            #[test]
            fn postgres() {
                let Some(admin) = crate::helpers::postgres_admin_url() else {
                    return;
                };
                let dir = tempfile::tempdir().expect("temporary folder");
                let name = crate::helpers::create_empty_postgres_database(&admin);
                let url = crate::helpers::with_database(&admin, &name);
                let ran = std::panic::catch_unwind(|| super::$name(&url, &dir));
                crate::helpers::drop_postgres_database(&admin, &name);
                if let Err(panic) = ran {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    )*};
}

on_each_backend!(
    import_runs_the_pipeline_from_the_command_line,
    import_commits_any_kind_and_resumes_a_stopped_job_of_the_same_file,
);

fn import_runs_the_pipeline_from_the_command_line(url: &str, dir: &tempfile::TempDir) {
    let file = dir.path().join("persons.csv");
    std::fs::write(
        &file,
        "national_id,first_name,last_name,birth_date,sex,household_id,household_role\n\
         0499370899,زهرا,احمدی,1360-01-01,female,01936b2e-0000-7000-8000-000000000000,head\n\
         1111111111,سارا,احمدی,1360-01-01,female,01936b2e-0000-7000-8000-000000000000,child\n",
    )
    .expect("file");
    let path = file.to_string_lossy().into_owned();
    let output = tavana(
        &[
            "import",
            "--kind",
            "persons",
            "--mode",
            "validate",
            "--atomicity",
            "rows",
            &path,
        ],
        url,
    );
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("read 2, created 0, updated 0, unchanged 0, failed 2"),
        "{stdout}"
    );
    assert!(stdout.contains("row 2 household_id"), "{stdout}");
    assert!(
        stdout.contains("(national_id_repeated_digit)") || stdout.contains("row 3 national_id"),
        "{stdout}"
    );
    // Committed with atomicity `all` (the default), the same rows write nothing: exit 1.
    let output = tavana(
        &["import", "--kind", "persons", "--mode", "commit", &path],
        url,
    );
    assert!(!output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("nothing was written: 2 rows failed"),
        "{output:?}"
    );
    // A JSON Lines file is known by its extension in any case.
    let lines = dir.path().join("PERSONS.JSONL");
    std::fs::write(&lines, "{\"national_id\": \"0499370899\"}\n").expect("file");
    let lines = lines.to_string_lossy().into_owned();
    let output = tavana(
        &["import", "--kind", "persons", "--mode", "validate", &lines],
        url,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("read 1,") && stdout.contains("row 1 first_name"),
        "{stdout}"
    );
    // An unknown column refuses the file: one line, exit 1.
    std::fs::write(&file, "national_id,shoe_size\n").expect("file");
    let output = tavana(
        &["import", "--kind", "persons", "--mode", "commit", &path],
        url,
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("unknown_column"));
}

/// `tavana import` runs every kind, and given again a file whose job was interrupted it resumes
/// that job instead of answering that the file was imported.
fn import_commits_any_kind_and_resumes_a_stopped_job_of_the_same_file(
    url: &str,
    dir: &tempfile::TempDir,
) {
    use diesel::prelude::*;
    use sha2::Digest;
    use tavana_persistence::schema::{areas, households};
    let output = tavana(&["demo-data", "--households", "2"], url);
    assert!(output.status.success(), "{output:?}");
    let db = tavana_persistence::Database::open(url, &crate::helpers::test_pool_options())
        .expect("database");
    let (neighbourhood, household): (String, String) = {
        let mut conn = db.get().expect("connection");
        let neighbourhood = areas::table
            .filter(areas::level.eq("neighbourhood"))
            .select(areas::id)
            .first(&mut conn)
            .expect("a neighbourhood");
        let household = households::table
            .select(households::id)
            .first(&mut conn)
            .expect("a household");
        (neighbourhood, household)
    };

    let file = dir.path().join("households.csv");
    std::fs::write(
        &file,
        format!("neighbourhood_id,address\n{neighbourhood},کوچه نرگس ۱۲\n"),
    )
    .expect("file");
    let path = file.to_string_lossy().into_owned();
    let registered = || -> i64 {
        let mut conn = db.get().expect("connection");
        households::table
            .count()
            .get_result(&mut conn)
            .expect("households")
    };
    // Validated, the good row is counted as it would be written, and nothing is written.
    let before = registered();
    let stdout = succeeded(tavana(
        &[
            "import",
            "--kind",
            "households",
            "--mode",
            "validate",
            &path,
        ],
        url,
    ));
    assert!(stdout.contains("completed; read 1, created 1"), "{stdout}");
    assert_eq!(registered(), before);
    let stdout = succeeded(tavana(
        &["import", "--kind", "households", "--mode", "commit", &path],
        url,
    ));
    assert!(stdout.contains("completed; read 1, created 1"), "{stdout}");
    assert_eq!(registered(), before + 1);

    // A person file whose job a killed command left running.
    let file = dir.path().join("persons.csv");
    let body = format!(
        "national_id,first_name,last_name,birth_date,sex,household_id,household_role\n\
         0499370899,زهرا,احمدی,1360-01-01,female,{household},other\n"
    );
    std::fs::write(&file, &body).expect("file");
    let path = std::fs::canonicalize(&file)
        .expect("path")
        .to_string_lossy()
        .into_owned();
    let stopped = uuid::Uuid::now_v7().to_string();
    {
        let mut conn = db.get().expect("connection");
        tavana_persistence::imports::start(
            &mut conn,
            tavana_persistence::imports::NewJob {
                id: stopped.clone(),
                kind: tavana_domain::import::ImportKind::Persons,
                mode: tavana_domain::import::ImportMode::Commit,
                atomicity: tavana_domain::import::Atomicity::Rows,
                format: tavana_domain::import::ImportFormat::Csv,
                principal: "cli".to_owned(),
                context: tavana_persistence::AuditContext::system(),
                scope: tavana_persistence::Scope::All,
                role: None,
                idempotency_key: None,
                checksum: hex::encode(sha2::Sha256::digest(body.as_bytes())),
                file_path: "/gone/persons.csv".to_owned(),
            },
        )
        .expect("job");
    }
    let import = [
        "import",
        "--kind",
        "persons",
        "--mode",
        "commit",
        "--atomicity",
        "rows",
    ];
    // A job whose runner is alive (here in this test's process, holding the job's run lock) is
    // refused: another process is importing the file.
    let (reading, paused) = std::sync::mpsc::channel::<()>();
    let (go_on, wait) = std::sync::mpsc::channel::<()>();
    let runner = {
        let (db, job) = (db.clone(), stopped.clone());
        std::thread::spawn(move || {
            let mut rows = std::iter::from_fn(|| {
                let _ = reading.send(());
                let _ = wait.recv();
                Some(Err(tavana_persistence::StoreError::Unavailable(
                    "killed".to_owned(),
                )))
            });
            tavana_persistence::imports::run(&db, &job, &mut rows, chrono::Utc::now().date_naive())
        })
    };
    paused.recv().expect("runner reading");
    let output = tavana(&[&import[..], &[path.as_str()]].concat(), url);
    assert!(
        one_line_error(&output).contains(&format!("another process as job {stopped}")),
        "{output:?}"
    );
    // Killed (it could not record its stop), the runner leaves the job running with no one
    // holding its lock: the command resumes it.
    go_on.send(()).expect("going on");
    assert!(runner.join().expect("runner").is_err());
    {
        use tavana_persistence::schema::import_jobs;
        let mut conn = db.get().expect("connection");
        diesel::update(import_jobs::table.find(&stopped))
            .set(import_jobs::state.eq("running"))
            .execute(&mut *conn)
            .expect("left running");
    }
    // Asked otherwise (all or nothing), it is not resumed: that would write part of the file.
    // The same command but `--atomicity all`.
    let output = tavana(&[&import[..6], &["all", path.as_str()]].concat(), url);
    assert!(
        one_line_error(&output).contains(&format!("job {stopped} stopped before its end")),
        "{output:?}"
    );
    let stdout = succeeded(tavana(&[&import[..], &[path.as_str()]].concat(), url));
    assert!(
        stdout.contains(&format!("resuming job {stopped}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("job {stopped}: completed; read 1, created 1")),
        "{stdout}"
    );
    // Once done, the same file again imports nothing.
    let stdout = succeeded(tavana(&[&import[..], &[path.as_str()]].concat(), url));
    assert!(
        stdout.contains(&format!("imported already as job {stopped} (completed)")),
        "{stdout}"
    );
}
