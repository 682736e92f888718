//! wasi:sql through the binary, with a guest written on tempo-sdk: the same suite on the
//! embedded SQLite default and on a real PostgreSQL (types both ways, parameters, errors,
//! bounds, transactions, the deadline), then what only one of them has: files that cannot be
//! reached and writes that survive a kill; a server that restarts, passwords never shown, and
//! TLS asked for. And examples/sql on both, moved by one setting.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{PATIENCE, Served, assert_contains, folder_with, tempo};
use serde_json::{Value, json};
use tempo_test_fixtures::{Gate, PostgresServer};

/// The settings every run of the suite has: small bounds, a short deadline.
const TEMPO_TOML: &str = "[sql]\nmax-rows = 50\nmax-bytes = 4096\n\n[limits]\ndeadline-ms = 3000\n";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dialect {
    Sqlite,
    Postgres,
}

/// POSTs `body` to the fixture's `route`; the status and the JSON answer.
fn post(url: &str, route: &str, body: Value) -> (u16, Value) {
    let response = crate::common::client()
        .post(format!("{url}{route}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(PATIENCE)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, answer)
}

fn statement(sql: &str, params: &[&str]) -> Value {
    json!({ "sql": sql, "params": params })
}

/// Runs `sql` with `exec` and expects it to change `changed` rows.
fn exec(url: &str, sql: &str, params: &[&str], changed: u64) {
    let (status, answer) = post(url, "/exec/main", statement(sql, params));
    assert_eq!(
        (status, &answer["changed"]),
        (200, &json!(changed)),
        "{sql}: {answer}"
    );
}

/// The rows of `sql`, expecting success.
fn query(url: &str, sql: &str, params: &[&str]) -> Vec<Value> {
    let (status, answer) = post(url, "/query/main", statement(sql, params));
    assert_eq!(status, 200, "{sql}: {answer}");
    answer["rows"].as_array().unwrap().clone()
}

/// The error of `sql`, expecting a 422.
fn refused(url: &str, route: &str, sql: &str, params: &[&str]) -> String {
    let (status, answer) = post(url, route, statement(sql, params));
    assert_eq!(status, 422, "{sql}: {answer}");
    answer["error"].as_str().unwrap().to_owned()
}

/// What both backends must do alike.
fn suite(served: &Served, dialect: Dialect) {
    let url = &served.url;
    exec(
        url,
        "CREATE TABLE kinds (id BIGINT PRIMARY KEY, flag BOOLEAN, ratio DOUBLE PRECISION, \
         label TEXT, day DATE, at TIMESTAMP, data BYTEA, missing TEXT)",
        &[],
        0,
    );

    // Parameters are bound: text that looks like SQL stays text.
    let hostile = "it's'); DROP TABLE kinds; --";
    exec(
        url,
        "INSERT INTO kinds (id, flag, ratio, label, day, at, missing) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        &[
            "1",
            "1",
            "2.5",
            hostile,
            "2024-02-29",
            "2024-02-29 12:34:56",
        ],
        1,
    );
    let bytes = match dialect {
        Dialect::Sqlite => "X'00ff10'",
        Dialect::Postgres => "decode('00ff10', 'hex')",
    };
    exec(
        url,
        &format!("UPDATE kinds SET data = {bytes} WHERE id = $1"),
        &["1"],
        1,
    );

    // Every type comes back in its data-type case.
    let rows = query(url, "SELECT * FROM kinds WHERE id = $1", &["1"]);
    assert_eq!(
        rows,
        [json!({
            "id": { "int64": 1 },
            "flag": { "boolean": true },
            "ratio": { "double": 2.5 },
            "label": { "str": hostile },
            "day": { "date": "2024-02-29" },
            "at": { "timestamp": "2024-02-29 12:34:56" },
            "data": { "binary": [0, 255, 16] },
            "missing": { "null": null },
        })]
    );
    // `$N` may repeat and come in any order.
    let rows = query(url, "SELECT $2 AS b, $1 AS a, $2 AS c", &["x", "y"]);
    assert_eq!(rows[0]["a"], json!({ "str": "x" }));
    assert_eq!(rows[0]["c"], json!({ "str": "y" }));
    // So do `?` (as the wasi:sql draft writes them) and `?N`, numbered as SQLite numbers them;
    // a `?` in a literal, a quoted name or a comment is text.
    exec(
        url,
        "INSERT INTO kinds (id, label) VALUES (?, ?)",
        &["10", "why?"],
        1,
    );
    let rows = query(
        url,
        "SELECT label, '?' AS \"q?\" FROM kinds /* ? */ WHERE id = ?2 -- ?\n AND label = ?1",
        &["why?", "10"],
    );
    assert_eq!(
        rows,
        [json!({ "label": { "str": "why?" }, "q?": { "str": "?" } })]
    );
    let rows = query(url, "SELECT ? AS a, ?1 AS b, ? AS c", &["x", "y"]);
    assert_eq!(rows[0]["b"], json!({ "str": "x" }));
    assert_eq!(rows[0]["c"], json!({ "str": "y" }));
    exec(url, "DELETE FROM kinds WHERE id = ?", &["10"], 1);

    // Errors are the guest's, and the server goes on.
    let err = refused(url, "/query/main", "SELECT $1 AS a", &[]);
    assert_contains(&err, "parameter");
    let err = refused(url, "/query/main", "SELEC 1", &[]);
    assert_contains(&err, "syntax");
    let err = refused(
        url,
        "/exec/main",
        "INSERT INTO kinds (id) VALUES ($1)",
        &["1"],
    );
    assert!(
        err.to_lowercase().contains("unique") || err.contains("duplicate"),
        "{err}"
    );
    let err = refused(url, "/query/other", "SELECT 1", &[]);
    assert_contains(&err, "no database `other` is declared");

    // Results are bounded, whatever the query makes.
    let count = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) \
                 SELECT i FROM n";
    let err = refused(url, "/query/main", count, &[]);
    assert_contains(&err, "more than 50 rows (sql max-rows)");
    let big = "x".repeat(5000);
    let err = refused(url, "/query/main", "SELECT $1 AS big", &[&big]);
    assert_contains(&err, "more than 4096 bytes (sql max-bytes)");

    // A transaction stays on its connection: committed, it is kept; left open, it is rolled
    // back and holds nothing.
    let script = |statements: Vec<Value>| post(url, "/script/main", Value::Array(statements));
    let insert = |id: &str| statement("INSERT INTO kinds (id) VALUES ($1)", &[id]);
    let (status, answer) = script(vec![
        statement("BEGIN", &[]),
        insert("2"),
        statement("COMMIT", &[]),
    ]);
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = script(vec![statement("BEGIN", &[]), insert("3")]);
    assert_eq!(status, 200, "{answer}");
    let ids = query(url, "SELECT id FROM kinds ORDER BY id", &[]);
    assert_eq!(
        ids,
        [json!({"id": {"int64": 1}}), json!({"id": {"int64": 2}})]
    );
    exec(url, "INSERT INTO kinds (id) VALUES ($1)", &["3"], 1);

    // A statement past the request's deadline is stopped, and so is the request.
    let slow = match dialect {
        Dialect::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
             SELECT count(*) AS c FROM n"
        }
        Dialect::Postgres => "SELECT pg_sleep(60)::text AS slept",
    };
    let started = Instant::now();
    let (status, _) = post(url, "/query/main", statement(slow, &[]));
    assert_eq!(status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the statement was not stopped"
    );
    assert_eq!(query(url, "SELECT count(*) AS c FROM kinds", &[]).len(), 1);
}

/// `cargo tempo run` of the SQL fixture in `folder`, with `env`, once it serves.
fn serve(folder: &Path, env: &[(&str, &str)]) -> Served {
    serve_component(folder, tempo_test_fixtures::sql(), env)
}

/// `cargo tempo run COMPONENT` in `folder`, with `env`, once it serves.
fn serve_component(folder: &Path, component: &Path, env: &[(&str, &str)]) -> Served {
    let mut served = Served::launch_in(folder, component, env);
    served.wait_for_serving();
    served
}

#[test]
fn embedded_sqlite_keeps_to_its_file_reads_beside_a_writer_and_loses_no_acknowledged_write() {
    let folder = folder_with(
        "tempo.toml",
        &format!("{TEMPO_TOML}\n[sql.databases]\nmain = \"embedded\"\n"),
    );
    let outbound = [("TEMPO_ALLOWED_OUTBOUND_HOSTS", "http://127.0.0.1:*")];
    let mut served = serve(folder.path(), &outbound);
    suite(&served, Dialect::Sqlite);
    served.wait_for_stderr("a guest opened the SQL database `other`, which is not declared");

    // No other file is reachable: not by ATTACH, not by VACUUM INTO.
    let outside = folder.path().join("outside.db");
    for sql in [
        format!("ATTACH DATABASE '{}' AS other", outside.display()),
        format!("VACUUM INTO '{}'", outside.display()),
    ] {
        let err = refused(&served.url, "/exec/main", &sql, &[]);
        assert!(err.contains("other database files"), "{sql}: {err}");
    }
    assert!(!outside.exists());
    assert!(folder.path().join(".tempo/sql/main.sqlite3").exists());

    // WAL: while one connection holds a write transaction open, reads go on, at once, and see
    // only what was committed.
    let gate = Gate::start();
    let writer = {
        let (url, gate) = (served.url.clone(), gate.url.clone());
        std::thread::spawn(move || {
            let steps = json!([
                statement("BEGIN EXCLUSIVE", &[]),
                statement("INSERT INTO kinds (id, label) VALUES ($1, $2)", &["50", "pending"]),
                { "wait_for": gate },
                statement("COMMIT", &[]),
            ]);
            post(&url, "/script/main", steps)
        })
    };
    gate.wait_for(1);
    let pending = "SELECT label FROM kinds WHERE id = $1";
    assert_eq!(query(&served.url, pending, &["50"]), Vec::<Value>::new());
    gate.release();
    assert_eq!(writer.join().unwrap().0, 200);
    assert_eq!(
        query(&served.url, pending, &["50"]),
        [json!({"label": {"str": "pending"}})]
    );

    // A write acknowledged is on disk: it survives the process being killed.
    exec(
        &served.url,
        "INSERT INTO kinds (id, label) VALUES ($1, $2)",
        &["9", "kept"],
        1,
    );
    served.signal(libc::SIGKILL);
    served.wait();
    let again = serve(folder.path(), &outbound);
    let rows = query(&again.url, "SELECT label FROM kinds WHERE id = $1", &["9"]);
    assert_eq!(rows, [json!({"label": {"str": "kept"}})]);
}

#[test]
fn postgres_runs_the_same_suite_heals_after_a_restart_and_never_shows_its_password() {
    let mut server = PostgresServer::start();
    // The server trusts local clients, so the password is only there to be hidden.
    let with_password = server.url.replace("postgres@", "postgres:hunter2@");
    let folder = folder_with("tempo.toml", TEMPO_TOML);
    let served = serve(
        folder.path(),
        &[("TEMPO_SQL_DATABASE_MAIN", &with_password)],
    );
    assert!(
        served
            .stderr()
            .contains(&server.url.replace("postgres@", "postgres:***@"))
    );
    suite(&served, Dialect::Postgres);

    // The stopped statement was cancelled on the server, not left running.
    let sleeping = "SELECT count(*) AS c FROM pg_stat_activity \
                    WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'";
    let started = Instant::now();
    while query(&served.url, sleeping, &[])[0]["c"] != json!({"int64": 0}) {
        assert!(started.elapsed() < PATIENCE, "pg_sleep still runs");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A server that goes away gives errors; back, it is used again with no restart of tempo.
    server.stop();
    let err = refused(&served.url, "/query/main", "SELECT 1 AS one", &[]);
    assert_contains(&err, "cannot be reached");
    server.start_again();
    let started = Instant::now();
    loop {
        let (status, answer) = post(
            &served.url,
            "/query/main",
            statement("SELECT id FROM kinds WHERE id = $1", &["1"]),
        );
        if status == 200 {
            assert_eq!(answer["rows"], json!([{"id": {"int64": 1}}]));
            break;
        }
        assert!(started.elapsed() < PATIENCE, "never healed: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = format!("{}{}", served.stdout(), served.stderr());
    assert!(!output.contains("hunter2"), "{output}");

    // TLS when the URL asks for it: this server has none, so the start stops and says so.
    let required = format!("{}?sslmode=require", server.url);
    let output = tempo()
        .current_dir(folder.path())
        .arg("run")
        .arg(tempo_test_fixtures::sql())
        .args(["--listen", "127.0.0.1:0"])
        .env("TEMPO_SQL_DATABASE_MAIN", &required)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("the PostgreSQL database `main`") && stderr.contains("TLS"),
        "{stderr}"
    );
}

/// `method url` with a JSON `body`: the status and the JSON answer.
fn call(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = crate::common::client()
        .request(method, url)
        .timeout(PATIENCE);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_str(&response.text().unwrap()).unwrap_or(Value::Null),
    )
}

#[test]
fn the_sql_example_runs_on_sqlite_and_on_postgres_with_one_setting() {
    use reqwest::Method;
    let example = common::example("sql", false);
    let settings = std::fs::read_to_string(common::workspace().join("examples/sql/tempo.toml"));
    let server = PostgresServer::start();
    for env in [
        vec![],
        vec![("TEMPO_SQL_DATABASE_TODOS", server.url.as_str())],
    ] {
        let folder = folder_with("tempo.toml", settings.as_ref().unwrap());
        let served = serve_component(folder.path(), &example.wasm, &env);
        let todos = format!("{}/todos", served.url);
        let (status, first) = call(Method::POST, &todos, Some(json!({"title": "write tests"})));
        assert_eq!(
            (status, &first),
            (
                201,
                &json!({"id": 1, "title": "write tests", "done": false})
            )
        );
        let (status, _) = call(Method::POST, &todos, Some(json!({"title": "ship"})));
        assert_eq!(status, 201);
        let (status, done) = call(
            Method::PATCH,
            &format!("{todos}/1"),
            Some(json!({"done": true})),
        );
        assert_eq!((status, &done["done"]), (200, &json!(true)), "{done}");
        assert_eq!(done["title"], "write tests");
        let (_, finished) = call(Method::GET, &format!("{todos}?done=true"), None);
        assert_eq!(finished, json!([done]));
        let (_, open) = call(Method::GET, &format!("{todos}?done=false"), None);
        assert_eq!(open, json!([{"id": 2, "title": "ship", "done": false}]));
        assert_eq!(call(Method::DELETE, &format!("{todos}/2"), None).0, 204);
        assert_eq!(call(Method::GET, &format!("{todos}/2"), None).0, 404);
        let embedded = folder.path().join(".tempo/sql/todos.sqlite3").exists();
        assert_eq!(embedded, env.is_empty(), "{env:?}");
    }
}

/// The attacks of a hostile guest on an embedded database, written as a guest sends them (bound
/// parameters included): each is refused with an error the guest reads, and tempo goes on, in
/// its memory, with its durability, and through its next start.
#[test]
fn a_hostile_guest_neither_crashes_nor_hoards_nor_breaks_an_embedded_database() {
    let folder = folder_with(
        "tempo.toml",
        &format!("{TEMPO_TOML}\n[sql.databases]\nmain = \"embedded\"\nother = \"embedded\"\n"),
    );
    let mut served = serve(folder.path(), &[]);
    let url = served.url.clone();

    // A pointer out of the host, and one into it: refused before anything runs.
    let pointers: [(&str, &str, &[&str], &str); 3] = [
        (
            "/query/main",
            "SELECT fts3_tokenizer($1) AS p",
            &["simple"],
            "the function `fts3_tokenizer`",
        ),
        (
            "/query/main",
            "SELECT fts3_tokenizer($1, $2) AS p",
            &["evil", "AAAAAAAA"],
            "fts3_tokenizer",
        ),
        (
            "/exec/main",
            "CREATE VIRTUAL TABLE ft_evil USING fts3(body, tokenize=evil)",
            &[],
            "evil",
        ),
    ];
    for (route, sql, params, says) in pointers {
        assert_contains(&refused(&url, route, sql, params), says);
    }
    assert_eq!(query(&url, "SELECT 1 AS alive", &[]).len(), 1);

    // TEMP tables would hold memory, and rows, on the pooled connection across requests.
    let hoard = json!([
        statement("PRAGMA temp_store = MEMORY", &[]),
        statement("CREATE TEMP TABLE IF NOT EXISTS hoard(x)", &[]),
        statement(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
             INSERT INTO hoard SELECT randomblob(1000000) FROM n",
            &[]
        ),
    ]);
    let before = served.resident_bytes();
    for _ in 0..5 {
        let (status, answer) = post(&url, "/script/main", hoard.clone());
        assert_eq!(status, 422, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("temp_store"),
            "{answer}"
        );
        for sql in [
            "CREATE TEMP TABLE IF NOT EXISTS hoard(x)",
            "CREATE TABLE temp.hoard(x)",
        ] {
            let err = refused(&url, "/exec/main", sql, &[]);
            assert_contains(&err, "TEMP objects");
        }
    }
    let grown = served.resident_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "tempo grew by {grown} bytes");
    let temp = query(&url, "SELECT count(*) AS n FROM sqlite_temp_schema", &[]);
    assert_eq!(temp, [json!({"n": {"int64": 0}})]);

    // Durability and the connection's setup stay the host's.
    for (sql, what) in [
        ("PRAGMA journal_mode = OFF", "journal_mode"),
        ("PRAGMA synchronous = OFF", "synchronous"),
        ("PRAGMA busy_timeout = 0", "busy_timeout"),
    ] {
        let err = refused(&url, "/exec/main", sql, &[]);
        assert!(err.contains(what), "{sql}: {err}");
    }
    for _ in 0..3 {
        let mode = query(&url, "PRAGMA journal_mode", &[]);
        assert_eq!(mode, [json!({"journal_mode": {"str": "wal"}})]);
    }

    // The schema cannot be broken, and the host's paths stay hidden.
    exec(&url, "CREATE TABLE t2 (x)", &[], 0);
    let breakers: [(&str, &[&str], &str); 2] = [
        ("PRAGMA writable_schema = ON", &[], "writable_schema"),
        (
            "UPDATE sqlite_schema SET sql = $1 WHERE name = $2",
            &["CREATE TABLE t2(", "t2"],
            "may not be modified",
        ),
    ];
    for (sql, params, says) in breakers {
        assert_contains(&refused(&url, "/exec/main", sql, params), says);
    }
    let where_it_is = folder.path().display().to_string();
    for sql in [
        "SELECT file FROM pragma_database_list",
        "PRAGMA database_list",
    ] {
        let err = refused(&url, "/query/main", sql, &[]);
        assert!(
            err.contains("database_list") && !err.contains(&where_it_is),
            "{err}"
        );
    }

    // A damaged file is its database's error alone: tempo starts, the others serve.
    served.signal(libc::SIGTERM);
    served.wait();
    let damaged = folder.path().join(".tempo/sql/other.sqlite3");
    std::fs::write(&damaged, vec![b'x'; 8192]).unwrap();
    let mut again = serve(folder.path(), &[]);
    let logged = again.wait_for_stderr("other.sqlite3");
    assert_contains(&logged, "integrity_check");
    assert_eq!(
        query(&again.url, "SELECT x FROM t2", &[]),
        Vec::<Value>::new()
    );
    let err = refused(&again.url, "/query/other", "SELECT 1 AS one", &[]);
    assert!(
        err.contains("cannot be opened") && !err.contains(&where_it_is),
        "{err}"
    );
}
