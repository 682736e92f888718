//! The sandbox of SQLite's own making that guest SQL runs in on an embedded database.
//!
//! SQLite compiles each statement before it runs it, and asks an authorizer about every
//! operation, table, function and pragma the statement uses. The authorizer here is an
//! allow-list: the statements of ordinary SQL on the database's own tables, the functions and
//! virtual-table modules SQLite documents for queries, and the pragmas that read the schema or
//! check the file. Everything else is refused when the statement is prepared, before it runs:
//! other files (`ATTACH`, `VACUUM INTO`), TEMP objects (which would live on the pooled
//! connection into other requests), functions that take pointers (`fts3_tokenizer`, `fts5`),
//! write to the host's log (`sqlite_log`) or load code (`load_extension`), and every pragma that
//! changes how the connection or the file works (`journal_mode`, `synchronous`, `temp_store`,
//! `writable_schema`, `busy_timeout`, `database_list`, which shows the host path, and the rest).
//!
//! Beside it: defensive mode (no deliberate corruption of the file), an untrusted schema, no
//! FTS3 tokenizer registration, SQLite's limits on lengths, depth and program size, and a heap
//! limit for the whole process.

use std::cell::RefCell;

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;

/// The functions a guest's SQL may call: SQLite's core, aggregate, window, date and time and
/// JSON functions, and the auxiliary functions of full-text search. (This build of SQLite has
/// no math functions.)
const FUNCTIONS: &[&str] = &[
    // Core scalar functions.
    "abs",
    "changes",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "glob",
    "hex",
    "if",
    "ifnull",
    "iif",
    "instr",
    "last_insert_rowid",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "ltrim",
    "max",
    "min",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "random",
    "randomblob",
    "replace",
    "round",
    "rtrim",
    "sign",
    "soundex",
    "sqlite_source_id",
    "sqlite_version",
    "substr",
    "substring",
    "total_changes",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unistr",
    "unistr_quote",
    "unlikely",
    "upper",
    "zeroblob",
    // Aggregates.
    "avg",
    "count",
    "group_concat",
    "string_agg",
    "sum",
    "total",
    // Window functions.
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // Date and time.
    "date",
    "time",
    "datetime",
    "julianday",
    "unixepoch",
    "strftime",
    "timediff",
    "current_date",
    "current_time",
    "current_timestamp",
    // JSON (and the `->` and `->>` operators, which are functions to the authorizer).
    "->",
    "->>",
    "json",
    "jsonb",
    "json_array",
    "jsonb_array",
    "json_array_length",
    "json_error_position",
    "json_extract",
    "jsonb_extract",
    "json_insert",
    "jsonb_insert",
    "json_object",
    "jsonb_object",
    "json_patch",
    "jsonb_patch",
    "json_pretty",
    "json_quote",
    "json_remove",
    "jsonb_remove",
    "json_replace",
    "jsonb_replace",
    "json_set",
    "jsonb_set",
    "json_type",
    "json_valid",
    "json_group_array",
    "jsonb_group_array",
    "json_group_object",
    "jsonb_group_object",
    // Full-text search: `MATCH` (a function to the authorizer) and the auxiliary functions.
    "match",
    "snippet",
    "offsets",
    "matchinfo",
    "highlight",
    "bm25",
];

/// SQLite's internal functions that ALTER TABLE runs through the authorizer; guest SQL cannot
/// call them itself, and `function_list` does not show them.
const INTERNAL_FUNCTIONS: &[&str] = &[
    "sqlite_drop_column",
    "sqlite_rename_column",
    "sqlite_rename_quotefix",
    "sqlite_rename_table",
    "sqlite_rename_test",
];

/// The virtual-table modules a guest may create tables of: full-text search and R*Trees.
/// (`fts3_tokenizer` being refused, an FTS3 table has only SQLite's built-in tokenizers.)
const MODULES: &[&str] = &["fts3", "fts4", "fts5", "rtree", "rtree_i32"];

/// Pragmas a guest may run with any argument: they read the schema, check the file, or keep
/// a number of the guest's own in the file's header.
const PRAGMAS: &[&str] = &[
    "application_id",
    "collation_list",
    "data_version",
    "defer_foreign_keys",
    "foreign_key_check",
    "foreign_key_list",
    "freelist_count",
    "function_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "module_list",
    "optimize",
    "page_count",
    "pragma_list",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
    "user_version",
];

/// Pragmas a guest may read but not set: they describe how the host set the connection up.
const READ_ONLY_PRAGMAS: &[&str] = &[
    "auto_vacuum",
    "busy_timeout",
    "cache_size",
    "encoding",
    "foreign_keys",
    "journal_mode",
    "page_size",
    "schema_version",
    "synchronous",
    "temp_store",
];

/// The limits SQLite keeps per connection, beyond the lengths the settings give.
const LIMITS: &[(Limit, i32)] = &[
    (Limit::SQLITE_LIMIT_ATTACHED, 0),
    (Limit::SQLITE_LIMIT_COLUMN, 2000),
    (Limit::SQLITE_LIMIT_EXPR_DEPTH, 1000),
    (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 500),
    (Limit::SQLITE_LIMIT_VDBE_OP, 250_000),
    (Limit::SQLITE_LIMIT_FUNCTION_ARG, 127),
    (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50_000),
    (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 32),
    (Limit::SQLITE_LIMIT_WORKER_THREADS, 0),
];

/// Why TEMP objects are refused.
const TEMP: &str = "TEMP objects (they would outlive the connection's lease)";

thread_local! {
    /// What the authorizer last refused on this thread, for the error the guest reads.
    static REFUSED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// How much one connection may take.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// The longest string or blob, in bytes.
    pub(crate) value_bytes: usize,
    /// The longest statement, in bytes.
    pub(crate) statement_bytes: usize,
    /// The most parameters of one statement.
    pub(crate) params: usize,
    /// All the memory SQLite may hold in this process, in bytes.
    pub(crate) heap_bytes: u64,
}

/// Shuts `db`, set up by the host, in the sandbox: from here on it runs guest SQL.
pub(crate) fn confine(db: &rusqlite::Connection, bounds: Bounds) -> rusqlite::Result<()> {
    // Process-wide: a lower limit than one already set wins, a higher one is ignored.
    db.pragma_update(None, "hard_heap_limit", bounds.heap_bytes)?;
    db.pragma_update(None, "soft_heap_limit", bounds.heap_bytes / 4 * 3)?;
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_WRITABLE_SCHEMA, false)?;
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, false)?;
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_ATTACH_CREATE, false)?;
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_ATTACH_WRITE, false)?;
    let length = |bytes: usize| i32::try_from(bytes).unwrap_or(i32::MAX);
    db.set_limit(Limit::SQLITE_LIMIT_LENGTH, length(bounds.value_bytes))?;
    db.set_limit(
        Limit::SQLITE_LIMIT_SQL_LENGTH,
        length(bounds.statement_bytes),
    )?;
    db.set_limit(Limit::SQLITE_LIMIT_VARIABLE_NUMBER, length(bounds.params))?;
    for &(limit, value) in LIMITS {
        db.set_limit(limit, value)?;
    }
    db.authorizer(Some(authorize));
    Ok(())
}

/// What the authorizer refused, if `err` is SQLite's refusal of a statement it prepared on this
/// thread.
pub(crate) fn refusal_behind(err: &rusqlite::Error) -> Option<String> {
    let refused = REFUSED.with(|refused| refused.borrow_mut().take());
    let text = err.to_string();
    let authorization = ["not authorized", "is prohibited", "authorization denied"];
    refused.filter(|_| authorization.iter().any(|words| text.contains(words)))
}

/// The allow-list: `Allow` for what ordinary SQL on the guest's own tables needs.
fn authorize(context: AuthContext<'_>) -> Authorization {
    // `CREATE TABLE temp.t` is a plain CREATE TABLE in the TEMP database.
    let in_temp = context
        .database_name
        .is_some_and(|name| name.eq_ignore_ascii_case("temp"));
    let refused = match context.action {
        AuthAction::Read { .. } | AuthAction::Select | AuthAction::Function { .. } => None,
        // ALTER TABLE updates the TEMP schema's own table; a guest's SQL cannot write it.
        AuthAction::Update { table_name, .. } if is_schema_table(table_name) => None,
        _ if in_temp => Some(TEMP.to_owned()),
        _ => None,
    };
    match refused.or_else(|| refusal(&context.action)) {
        None => Authorization::Allow,
        Some(why) => {
            REFUSED.with(|refused| *refused.borrow_mut() = Some(why));
            Authorization::Deny
        }
    }
}

/// Whether `table` is where SQLite keeps a schema, which only SQLite writes to.
fn is_schema_table(table: &str) -> bool {
    [
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
    ]
    .iter()
    .any(|name| table.eq_ignore_ascii_case(name))
}

/// Why `action` is refused, or `None` when it is allowed.
fn refusal(action: &AuthAction<'_>) -> Option<String> {
    use AuthAction as A;
    let listed =
        |list: &[&str], name: &str| list.iter().any(|item| item.eq_ignore_ascii_case(name));
    match *action {
        A::Select
        | A::Recursive
        | A::Transaction { .. }
        | A::Savepoint { .. }
        | A::CreateTable { .. }
        | A::CreateIndex { .. }
        | A::CreateView { .. }
        | A::CreateTrigger { .. }
        | A::DropTable { .. }
        | A::DropIndex { .. }
        | A::DropView { .. }
        | A::DropTrigger { .. }
        | A::AlterTable { .. }
        | A::Reindex { .. }
        | A::Analyze { .. } => None,
        // Tables are the guest's; eponymous virtual tables are SQLite's: JSON's, the pragmas
        // on the lists, and not `dbstat` (compiled in, and of no use to a guest).
        A::Read { table_name, .. } => match table_name.strip_prefix("pragma_") {
            Some(pragma) if !listed(PRAGMAS, pragma) && !listed(READ_ONLY_PRAGMAS, pragma) => {
                Some(format!("the pragma `{pragma}`"))
            }
            _ if table_name.eq_ignore_ascii_case("dbstat") => {
                Some("the virtual table `dbstat`".to_owned())
            }
            _ => None,
        },
        // SQLite authorizes its own writes to `sqlite_schema` for every CREATE and DROP, and
        // refuses a guest's (no writable schema); the statistics it keeps are its to write
        // (a DROP TABLE deletes a table's statistics through the authorizer too).
        A::Delete { .. } => None,
        A::Insert { table_name } | A::Update { table_name, .. } => {
            let statistics = table_name
                .get(..11)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sqlite_stat"));
            statistics.then(|| format!("writing to SQLite's own table `{table_name}`"))
        }
        A::Function { function_name } => {
            let allowed =
                listed(FUNCTIONS, function_name) || listed(INTERNAL_FUNCTIONS, function_name);
            (!allowed).then(|| format!("the function `{function_name}`"))
        }
        A::CreateVtable { module_name, .. } | A::DropVtable { module_name, .. } => {
            (!listed(MODULES, module_name))
                .then(|| format!("virtual tables of the module `{module_name}`"))
        }
        A::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let allowed = listed(PRAGMAS, pragma_name)
                || (pragma_value.is_none() && listed(READ_ONLY_PRAGMAS, pragma_name));
            (!allowed).then(|| match pragma_value {
                Some(_) if listed(READ_ONLY_PRAGMAS, pragma_name) => {
                    format!("setting the pragma `{pragma_name}`")
                }
                _ => format!("the pragma `{pragma_name}`"),
            })
        }
        A::Attach { .. } | A::Detach { .. } => Some("other database files".to_owned()),
        A::CreateTempTable { .. }
        | A::CreateTempIndex { .. }
        | A::CreateTempTrigger { .. }
        | A::CreateTempView { .. }
        | A::DropTempTable { .. }
        | A::DropTempIndex { .. }
        | A::DropTempTrigger { .. }
        | A::DropTempView { .. } => Some(TEMP.to_owned()),
        _ => Some(format!("{action:?}")),
    }
}

#[cfg(test)]
#[path = "sandbox_tests.rs"]
mod tests;
