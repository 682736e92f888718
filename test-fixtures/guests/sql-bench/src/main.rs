//! `sql-bench DB COUNT`: a `wasi:cli` program that fills the table `bench` of the database DB
//! with 100 rows, then makes COUNT point queries (`SELECT … WHERE id = $1`), one after another as
//! a request handler makes them, and prints `sql-bench: N queries/s`. What bench/sql.sh compares
//! with the same queries made directly (bench/sql-direct).

use std::time::Instant;

use tempo_sdk::sql::Database;

/// The rows the table holds.
const ROWS: i64 = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, count] = args.as_slice() else {
        return Err("usage: sql-bench DB COUNT".into());
    };
    let count: i64 = count.parse()?;
    let db = Database::open(db)?;
    db.exec("DROP TABLE IF EXISTS bench", &[])?;
    db.exec(
        "CREATE TABLE bench (id BIGINT PRIMARY KEY, name TEXT NOT NULL, score DOUBLE PRECISION)",
        &[],
    )?;
    for id in 1..=ROWS {
        db.exec(
            "INSERT INTO bench (id, name, score) VALUES ($1, $2, $3)",
            &[&id, &format!("name-{id}"), &(id as f64 / 2.0)],
        )?;
    }
    let start = Instant::now();
    for i in 0..count {
        let id = i % ROWS + 1;
        let rows = db.query("SELECT id, name, score FROM bench WHERE id = $1", &[&id])?;
        let name = rows.iter().next().and_then(|row| row.get("name")?.as_str().map(str::len));
        if name.is_none() {
            return Err(format!("no row {id}").into());
        }
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    println!("sql-bench: {rate:.0} queries/s");
    Ok(())
}
