#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use super::*;

const BOUNDS: Bounds = Bounds {
    value_bytes: 1 << 20,
    statement_bytes: 1 << 20,
    params: 1000,
    heap_bytes: 256 << 20,
};

/// A database file of its own, confined.
fn confined() -> (tempfile::TempDir, rusqlite::Connection) {
    let folder = tempfile::tempdir().unwrap();
    let db = rusqlite::Connection::open(folder.path().join("t.sqlite3")).unwrap();
    db.pragma_update(None, "journal_mode", "WAL").unwrap();
    confine(&db, BOUNDS).unwrap();
    (folder, db)
}

/// Runs `sql` with text `params`, as a guest's statement runs.
fn run(db: &rusqlite::Connection, sql: &str, params: &[&str]) -> rusqlite::Result<()> {
    let mut statement = db.prepare(sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(params))?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// Expects `sql` refused by the authorizer, naming `what`.
fn refused(db: &rusqlite::Connection, sql: &str, params: &[&str], what: &str) {
    let err = run(db, sql, params).expect_err(sql);
    let why = refusal_behind(&err).unwrap_or_else(|| panic!("{sql}: {err}"));
    assert!(why.contains(what), "{sql}: {why}");
}

#[test]
fn the_attacks_are_refused_when_prepared() {
    let (folder, db) = confined();
    // A pointer out, and one in: fts3_tokenizer takes them as bound parameters.
    refused(
        &db,
        "SELECT fts3_tokenizer($1)",
        &["simple"],
        "fts3_tokenizer",
    );
    refused(
        &db,
        "SELECT fts3_tokenizer($1, $2)",
        &["evil", "AAAAAAAA"],
        "fts3_tokenizer",
    );
    refused(&db, "SELECT fts5($1)", &["x"], "`fts5`");
    refused(
        &db,
        "SELECT load_extension($1)",
        &["/tmp/x"],
        "load_extension",
    );
    refused(&db, "SELECT sqlite_log(1, $1)", &["forged"], "sqlite_log");
    refused(&db, "SELECT name, pgoffset FROM dbstat", &[], "`dbstat`");
    // TEMP objects would stay on the pooled connection.
    refused(&db, "CREATE TEMP TABLE hoard(x)", &[], "TEMP");
    refused(&db, "CREATE TABLE temp.hoard(x)", &[], "TEMP");
    refused(&db, "CREATE TEMP VIEW v AS SELECT 1", &[], "TEMP");
    // Nothing that changes the connection or the file's durability.
    for (sql, what) in [
        (
            "PRAGMA temp_store = MEMORY",
            "setting the pragma `temp_store`",
        ),
        (
            "PRAGMA journal_mode = OFF",
            "setting the pragma `journal_mode`",
        ),
        (
            "PRAGMA synchronous = OFF",
            "setting the pragma `synchronous`",
        ),
        (
            "PRAGMA busy_timeout = 0",
            "setting the pragma `busy_timeout`",
        ),
        (
            "PRAGMA foreign_keys = OFF",
            "setting the pragma `foreign_keys`",
        ),
        ("PRAGMA writable_schema = ON", "`writable_schema`"),
        ("PRAGMA locking_mode = EXCLUSIVE", "`locking_mode`"),
        ("PRAGMA hard_heap_limit = 0", "`hard_heap_limit`"),
        (
            "PRAGMA cache_size = 1000000",
            "setting the pragma `cache_size`",
        ),
        ("PRAGMA database_list", "`database_list`"),
        ("SELECT file FROM pragma_database_list", "`database_list`"),
        (
            "PRAGMA temp_store_directory = '/tmp'",
            "`temp_store_directory`",
        ),
    ] {
        refused(&db, sql, &[], what);
    }
    // Other files.
    let outside = folder.path().join("outside.db").display().to_string();
    refused(
        &db,
        &format!("ATTACH '{outside}' AS o"),
        &[],
        "other database files",
    );
    refused(
        &db,
        &format!("VACUUM INTO '{outside}'"),
        &[],
        "other database files",
    );
    assert!(!folder.path().join("outside.db").exists());
    // The schema stays SQLite's: defensive mode and the authorizer both keep it so.
    run(&db, "CREATE TABLE t2(x)", &[]).unwrap();
    run(&db, "ANALYZE", &[]).unwrap();
    refused(
        &db,
        "INSERT INTO sqlite_stat1 VALUES ($1, $2, $3)",
        &["t2", "t2", "1 1"],
        "sqlite_stat1",
    );
    let err = run(
        &db,
        "UPDATE sqlite_schema SET sql = $1 WHERE name = $2",
        &["CREATE TABLE t2(", "t2"],
    )
    .unwrap_err();
    assert!(err.to_string().contains("may not be modified"), "{err}");
    // SQLite's memory has a bound for the whole process (a lower one set elsewhere wins).
    let plain = rusqlite::Connection::open_in_memory().unwrap();
    let limit: i64 = plain
        .pragma_query_value(None, "hard_heap_limit", |row| row.get(0))
        .unwrap();
    assert!(limit > 0 && limit as u64 <= BOUNDS.heap_bytes, "{limit}");
    // Values and statements have their lengths.
    let err = run(&db, "SELECT randomblob(2000000)", &[]).unwrap_err();
    assert!(err.to_string().contains("too big"), "{err}");
}

#[test]
fn ordinary_sql_runs() {
    let (_folder, db) = confined();
    for sql in [
        "CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, doc TEXT)",
        "CREATE INDEX people_name ON people (name)",
        "CREATE VIEW names AS SELECT name FROM people",
        "CREATE TABLE audit (at TEXT, what TEXT)",
        "CREATE TRIGGER people_audit AFTER INSERT ON people \
         BEGIN INSERT INTO audit VALUES (datetime('now'), new.name); END",
        "INSERT INTO people (name, doc) VALUES ('ada', json_object('langs', json_array('en')))",
        "INSERT INTO people (name) VALUES (upper('grace'))",
        "SELECT p.name, a.what FROM people p JOIN audit a ON a.what = p.name",
        "SELECT value FROM people, json_each(people.doc, '$.langs')",
        "SELECT key FROM json_tree('{\"a\": [1, 2]}')",
        "SELECT doc ->> '$.langs[0]', doc -> 'langs' FROM people",
        "SELECT name, row_number() OVER (ORDER BY name), lag(name) OVER () FROM people",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 9) \
         SELECT group_concat(i), sum(i), avg(i), total(i) FROM n",
        "SELECT strftime('%Y', 'now'), unixepoch(), julianday('2024-02-29'), \
         round(2.345, 1), printf('%05d', 7), hex(randomblob(8)), coalesce(NULL, 1)",
        "ALTER TABLE people ADD COLUMN age INTEGER",
        "ALTER TABLE people RENAME COLUMN age TO years",
        "ALTER TABLE people DROP COLUMN years",
        "ALTER TABLE audit RENAME TO journal",
        "ANALYZE",
        "PRAGMA optimize",
        "SELECT tbl, stat FROM sqlite_stat1",
        "REINDEX people_name",
        "SAVEPOINT s1",
        "RELEASE s1",
        "BEGIN",
        "DELETE FROM people WHERE name = 'nobody'",
        "COMMIT",
        "PRAGMA table_info(people)",
        "SELECT name FROM pragma_table_info('people')",
        "PRAGMA index_list(people)",
        "PRAGMA foreign_key_check",
        "PRAGMA integrity_check",
        "PRAGMA user_version = 3",
        "PRAGMA user_version",
        "PRAGMA journal_mode",
        "PRAGMA foreign_keys",
        "SELECT name, sql FROM sqlite_schema",
        "SELECT seq FROM sqlite_sequence",
        "CREATE VIRTUAL TABLE notes USING fts5(body)",
        "INSERT INTO notes (body) VALUES ('the quick brown fox')",
        "SELECT highlight(notes, 0, '[', ']'), bm25(notes) FROM notes WHERE notes MATCH 'quick'",
        "CREATE VIRTUAL TABLE old_notes USING fts4(body, tokenize=porter)",
        "INSERT INTO old_notes (body) VALUES ('jumped over the lazy dog')",
        "SELECT snippet(old_notes), offsets(old_notes) FROM old_notes WHERE body MATCH 'lazy'",
        "CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1)",
        "INSERT INTO boxes VALUES (1, 0, 10)",
        "SELECT id FROM boxes WHERE x0 <= 5 AND x1 >= 5",
        "DROP TABLE boxes",
        "DROP TABLE journal",
        "DROP VIEW names",
        "DROP TRIGGER people_audit",
        "DROP INDEX people_name",
    ] {
        run(&db, sql, &[]).unwrap_or_else(|err| {
            panic!("{sql}: {err} ({:?})", REFUSED.with(|r| r.borrow().clone()))
        });
    }
    assert_eq!(REFUSED.with(|refused| refused.borrow().clone()), None);
}

/// The first column of every row `sql` returns.
fn listed(db: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut statement = db.prepare(sql).unwrap();
    let rows = statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// The names of this SQLite's `kind`s (`function`, `pragma`), of which there are more than
/// `more_than`; fails naming each that none of `lists` has: neither allowed nor refused.
fn each_listed(
    db: &rusqlite::Connection,
    kind: &str,
    more_than: usize,
    lists: &[&[&str]],
) -> Vec<String> {
    let names = listed(db, &format!("SELECT DISTINCT name FROM pragma_{kind}_list"));
    assert!(names.len() > more_than, "{names:?}");
    let undecided: Vec<&String> = names
        .iter()
        .filter(|name| !lists.iter().any(|list| list.contains(&name.as_str())))
        .collect();
    assert!(
        undecided.is_empty(),
        "neither allowed nor refused: {undecided:?}"
    );
    names
}

/// Every function and pragma this SQLite build has is either on a list above or refused on
/// purpose here: a new SQLite that brings more fails this test until each is decided.
#[test]
fn every_function_and_pragma_of_this_sqlite_is_decided() {
    let (_folder, db) = confined();
    let refused_functions = [
        "affinity",
        "datedebug",
        "expr_compare",
        "expr_implies_expr",
        "fpdecode",
        "fts3_tokenizer",
        "fts5",
        "fts5_get_locale",
        "fts5_insttoken",
        "fts5_locale",
        "fts5_source_id",
        "implies_nonnull_row",
        "load_extension",
        "optimize",
        "parseuri",
        "rtreecheck",
        "rtreedepth",
        "rtreenode",
        "sqlite_compileoption_get",
        "sqlite_compileoption_used",
        "sqlite_log",
        "sqlite_offset",
        "subtype",
        "unknown",
        "json_parse",
    ];
    let names = each_listed(&db, "function", 100, &[FUNCTIONS, &refused_functions]);
    // The list names only functions this SQLite has.
    let missing: Vec<&&str> = FUNCTIONS
        .iter()
        .filter(|name| !names.iter().any(|n| n == *name))
        .collect();
    assert!(
        missing.is_empty(),
        "allowed but not in this SQLite: {missing:?}"
    );
    for name in &names {
        let allowed = refusal(&AuthAction::Function {
            function_name: name,
        })
        .is_none();
        assert_eq!(allowed, FUNCTIONS.contains(&name.as_str()), "{name}");
    }

    let refused_pragmas = [
        "analysis_limit",
        "automatic_index",
        "cache_spill",
        "case_sensitive_like",
        "cell_size_check",
        "checkpoint_fullfsync",
        "compile_options",
        "count_changes",
        "database_list",
        "default_cache_size",
        "empty_result_callbacks",
        "full_column_names",
        "fullfsync",
        "hard_heap_limit",
        "ignore_check_constraints",
        "incremental_vacuum",
        "journal_size_limit",
        "legacy_alter_table",
        "locking_mode",
        "max_page_count",
        "mmap_size",
        "query_only",
        "read_uncommitted",
        "recursive_triggers",
        "reverse_unordered_selects",
        "secure_delete",
        "short_column_names",
        "shrink_memory",
        "soft_heap_limit",
        "temp_store_directory",
        "threads",
        "trusted_schema",
        "wal_autocheckpoint",
        "wal_checkpoint",
        "writable_schema",
    ];
    let lists = [PRAGMAS, READ_ONLY_PRAGMAS, &refused_pragmas];
    let pragmas = each_listed(&db, "pragma", 50, &lists);
    for name in &pragmas {
        let (any, read) = (
            PRAGMAS.contains(&name.as_str()),
            READ_ONLY_PRAGMAS.contains(&name.as_str()),
        );
        assert!(
            any || read || refused_pragmas.contains(&name.as_str()),
            "the pragma `{name}` is neither allowed nor refused"
        );
        let pragma = |pragma_value| AuthAction::Pragma {
            pragma_name: name,
            pragma_value,
        };
        assert_eq!(refusal(&pragma(None)).is_none(), any || read, "{name}");
        assert_eq!(refusal(&pragma(Some("1"))).is_none(), any, "{name}");
    }
}
