//! SQL databases (`wasi:sql`): statements with parameters, rows with named columns.
//!
//! ```no_run
//! use tempo_sdk::sql::Database;
//!
//! # fn main() -> Result<(), tempo_sdk::sql::Error> {
//! let db = Database::open("main")?;
//! db.exec("CREATE TABLE IF NOT EXISTS notes (id BIGINT PRIMARY KEY, body TEXT)", &[])?;
//! db.exec("INSERT INTO notes (id, body) VALUES ($1, $2)", &[&7, &"remember"])?;
//! for row in db.query("SELECT id, body FROM notes WHERE id = $1", &[&7])?.iter() {
//!     let body = row.get("body").and_then(|value| value.as_str());
//! }
//! # Ok(()) }
//! ```
//!
//! Parameters are bound by the host, never spliced into the SQL. They travel as text (the WIT
//! has no other form) and the database converts them; write booleans as `1`/`0` to be read the
//! same on SQLite and PostgreSQL, and `NULL` in the SQL itself. Write them `$1, $2…` or `?`:
//! both backends read either the same. A database other than `default` must be declared in tempo.toml
//! (`[sql.databases]`).

use std::fmt;

use crate::bindings::wasi::sql::{readwrite, types};

pub use types::DataType as Value;

/// Why a database operation failed: the host's or the database's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<types::Error> for Error {
    fn from(error: types::Error) -> Self {
        Self(error.trace())
    }
}

/// A value given as a statement's parameter.
pub trait Param {
    /// The text the host binds.
    fn to_param(&self) -> String;
}

macro_rules! display_params {
    ($($type:ty),*) => {
        $(impl Param for $type {
            fn to_param(&self) -> String {
                self.to_string()
            }
        })*
    };
}

display_params!(str, String, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

impl Param for bool {
    /// `1` or `0`: what SQLite stores for a boolean and PostgreSQL reads as one.
    fn to_param(&self) -> String {
        if *self { "1" } else { "0" }.to_owned()
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn to_param(&self) -> String {
        (**self).to_param()
    }
}

/// An open connection to a database. Statements on one connection run in order, so a
/// transaction (`BEGIN` … `COMMIT`) stays on it; one left open is rolled back when it is dropped.
pub struct Database {
    connection: types::Connection,
}

impl Database {
    /// Opens the database called `name`.
    pub fn open(name: &str) -> Result<Self, Error> {
        Ok(Self {
            connection: types::Connection::open(name)?,
        })
    }

    /// The rows `sql` returns with `params` bound.
    pub fn query(&self, sql: &str, params: &[&dyn Param]) -> Result<Rows, Error> {
        let statement = prepare(sql, params)?;
        Ok(Rows::new(readwrite::query(&self.connection, &statement)?))
    }

    /// Runs `sql` with `params` bound; how many rows it changed.
    pub fn exec(&self, sql: &str, params: &[&dyn Param]) -> Result<u32, Error> {
        let statement = prepare(sql, params)?;
        Ok(readwrite::exec(&self.connection, &statement)?)
    }
}

fn prepare(sql: &str, params: &[&dyn Param]) -> Result<types::Statement, Error> {
    let params: Vec<String> = params.iter().map(|param| param.to_param()).collect();
    Ok(types::Statement::prepare(sql, &params)?)
}

/// The rows of a query. wasi:sql gives them as one list of (column, value) cells, row after
/// row; this splits it at each repeat of the column names (give columns distinct names, with
/// `AS`, when a query would repeat one).
#[derive(Debug, Clone)]
pub struct Rows {
    columns: Vec<String>,
    values: Vec<Value>,
}

impl Rows {
    fn new(cells: Vec<types::Row>) -> Self {
        let width = row_width(&cells);
        let mut columns = Vec::with_capacity(width);
        let mut values = Vec::with_capacity(cells.len());
        // The first row's names are taken, not copied: a query's cost is mostly such copies.
        for (index, cell) in cells.into_iter().enumerate() {
            if index < width {
                columns.push(cell.field_name);
            }
            values.push(cell.value);
        }
        Self { columns, values }
    }

    /// The column names, in order (empty when there are no rows).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.values
            .len()
            .checked_div(self.columns.len())
            .unwrap_or(0)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The rows in order.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.values
            .chunks(self.columns.len().max(1))
            .map(|values| Row {
                columns: &self.columns,
                values,
            })
    }

    /// The rows as JSON objects, column name to value (see [`to_json`]).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(self.iter().map(|row| row.to_json()).collect())
    }
}

/// How many cells make a row: the shortest period of the column names.
fn row_width(cells: &[types::Row]) -> usize {
    let name = |index: usize| cells[index].field_name.as_str();
    (1..=cells.len())
        .find(|&width| {
            cells.len().is_multiple_of(width)
                && (width..cells.len()).all(|index| name(index) == name(index % width))
        })
        .unwrap_or(0)
}

/// One row of a query.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// The value of the column `name`.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        let index = self.columns.iter().position(|column| column == name)?;
        self.values.get(index)
    }

    /// The values, in the order of the columns.
    pub fn values(&self) -> &'a [Value] {
        self.values
    }

    /// The row as a JSON object, column name to value (see [`to_json`]).
    pub fn to_json(&self) -> serde_json::Value {
        self.columns
            .iter()
            .zip(self.values)
            .map(|(name, value)| (name.clone(), to_json(value)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// A value as JSON: numbers, text (dates and times too), booleans and null as themselves, and
/// binary values as an array of bytes.
pub fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::json;
    match value {
        Value::Int32(n) => json!(n),
        Value::Int64(n) => json!(n),
        Value::Uint32(n) => json!(n),
        Value::Uint64(n) => json!(n),
        Value::Float(x) | Value::Double(x) => json!(x),
        Value::Str(text) | Value::Date(text) | Value::Time(text) | Value::Timestamp(text) => {
            json!(text)
        }
        Value::Boolean(b) => json!(b),
        Value::Binary(bytes) => json!(bytes),
        Value::Null => serde_json::Value::Null,
    }
}

impl Value {
    /// The value as a whole number, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int32(n) => Some(n.into()),
            Value::Int64(n) => Some(n),
            Value::Uint32(n) => Some(n.into()),
            Value::Uint64(n) => i64::try_from(n).ok(),
            _ => None,
        }
    }

    /// The value as a floating-point number, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(x) | Value::Double(x) => Some(x),
            _ => self.as_i64().map(|n| n as f64),
        }
    }

    /// The value as text, if it is text, a date, a time or a timestamp.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(text) | Value::Date(text) | Value::Time(text) | Value::Timestamp(text) => {
                Some(text)
            }
            _ => None,
        }
    }

    /// The value as a boolean: a boolean, or a whole number (0 is false).
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Boolean(b) => Some(b),
            _ => self.as_i64().map(|n| n != 0),
        }
    }

    /// Whether the value is SQL's `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(names: &[&str]) -> Vec<types::Row> {
        names
            .iter()
            .enumerate()
            .map(|(index, name)| types::Row {
                field_name: (*name).to_owned(),
                value: Value::Int64(index as i64),
            })
            .collect()
    }

    #[test]
    fn cells_split_into_rows_at_each_repeat_of_the_column_names() {
        let rows = Rows::new(cells(&["id", "name", "id", "name", "id", "name"]));
        assert_eq!(rows.columns(), ["id", "name"]);
        assert_eq!(rows.len(), 3);
        let last = rows.iter().last().unwrap();
        assert!(matches!(last.get("name"), Some(Value::Int64(5))));

        let one = Rows::new(cells(&["id", "name", "score"]));
        assert_eq!((one.columns().len(), one.len()), (3, 1));
        // A repeated name within a row makes rows of the shortest period.
        assert_eq!(Rows::new(cells(&["a", "a"])).columns(), ["a"]);
        let none = Rows::new(Vec::new());
        assert!(none.is_empty() && none.columns().is_empty());
    }
}
