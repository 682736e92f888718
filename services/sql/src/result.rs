//! A query's result as it is gathered: cells in the WIT's types, counted against the bounds as
//! they arrive, so a result over a bound is dropped after at most one row too many.

use crate::{Bounds, Failure};

/// A value in one of the WIT's `data-type` cases.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Int32(i32),
    Int64(i64),
    Uint32(u32),
    Float(f64),
    Double(f64),
    Str(String),
    Boolean(bool),
    Date(String),
    Time(String),
    Timestamp(String),
    Binary(Vec<u8>),
    Null,
}

impl Value {
    /// What the value weighs against `max-bytes`: its text or bytes, or 8 for a number.
    fn weight(&self) -> usize {
        match self {
            Self::Str(text) | Self::Date(text) | Self::Time(text) | Self::Timestamp(text) => {
                text.len()
            }
            Self::Binary(bytes) => bytes.len(),
            _ => 8,
        }
    }
}

/// One column of one row: the WIT's `row` record. A query's rows are its cells in order, row
/// after row.
pub(crate) type Cell = (String, Value);

/// The cells of a query so far, and what they weigh.
pub(crate) struct Gathered {
    bounds: Bounds,
    cells: Vec<Cell>,
    rows: usize,
    bytes: usize,
}

impl Gathered {
    pub(crate) fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            cells: Vec::new(),
            rows: 0,
            bytes: 0,
        }
    }

    /// Counts a new row, refusing it when it is one too many.
    pub(crate) fn begin_row(&mut self) -> Result<(), Failure> {
        self.rows += 1;
        if self.rows > self.bounds.max_rows {
            return Err(Failure::Limit {
                limit: "sql-rows",
                message: format!(
                    "the query returns more than {} rows (sql max-rows); add a LIMIT or \
                     narrow the WHERE clause",
                    self.bounds.max_rows
                ),
            });
        }
        Ok(())
    }

    /// Adds one cell of the current row, refusing it when the result grows past `max-bytes`.
    pub(crate) fn push(&mut self, name: &str, value: Value) -> Result<(), Failure> {
        self.bytes += name.len() + value.weight();
        if self.bytes > self.bounds.max_bytes {
            return Err(Failure::Limit {
                limit: "sql-bytes",
                message: format!(
                    "the query returns more than {} bytes (sql max-bytes); select fewer \
                     columns or rows",
                    self.bounds.max_bytes
                ),
            });
        }
        self.cells.push((name.to_owned(), value));
        Ok(())
    }

    pub(crate) fn into_cells(self) -> Vec<Cell> {
        self.cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_bytes_are_bounded_as_they_arrive() {
        let mut gathered = Gathered::new(Bounds {
            max_rows: 2,
            max_bytes: 20,
        });
        gathered.begin_row().unwrap();
        gathered.push("id", Value::Int64(1)).unwrap();
        gathered.begin_row().unwrap();
        gathered.push("id", Value::Int64(2)).unwrap();
        let err = gathered.begin_row().unwrap_err();
        assert!(err.to_string().contains("more than 2 rows"), "{err}");

        let mut gathered = Gathered::new(Bounds {
            max_rows: 10,
            max_bytes: 20,
        });
        gathered.begin_row().unwrap();
        gathered.push("name", Value::Str("short".into())).unwrap();
        let err = gathered
            .push("name", Value::Str("much too long".into()))
            .unwrap_err();
        assert!(matches!(
            err,
            Failure::Limit {
                limit: "sql-bytes",
                ..
            }
        ));
        assert_eq!(gathered.into_cells().len(), 1);
    }
}
