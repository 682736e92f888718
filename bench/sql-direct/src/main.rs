//! `sql-direct postgres URL COUNT` or `sql-direct sqlite FILE COUNT`: the point queries of the
//! `sql-bench` guest, made directly with the drivers tempo uses (a deadpool of tokio-postgres
//! connections with prepared statements cached; rusqlite in WAL mode with its statement cache),
//! on a table the guest filled. What bench/sql.sh compares a guest going through tempo against.

use std::time::Instant;

/// The rows the table holds.
const ROWS: i64 = 100;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backend, location, count] = args.as_slice() else {
        anyhow::bail!("usage: sql-direct postgres|sqlite URL|FILE COUNT");
    };
    let count: i64 = count.parse()?;
    let start = Instant::now();
    match backend.as_str() {
        "postgres" => postgres(location, count).await?,
        "sqlite" => sqlite(location, count)?,
        other => anyhow::bail!("unknown backend {other}"),
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    #[allow(clippy::print_stdout, reason = "the rate is the program's result")]
    {
        println!("sql-direct: {rate:.0} queries/s");
    }
    Ok(())
}

/// One connection taken from a pool per query and statements prepared once, as tempo does.
async fn postgres(url: &str, count: i64) -> anyhow::Result<()> {
    let config: tokio_postgres::Config = url.parse()?;
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(8)
        .build()?;
    for i in 0..count {
        let client = pool.get().await?;
        let statement = client
            .prepare_cached("SELECT id, name, score FROM bench WHERE id = $1")
            .await?;
        let rows = client.query(&statement, &[&(i % ROWS + 1)]).await?;
        anyhow::ensure!(rows.len() == 1, "no row");
    }
    Ok(())
}

fn sqlite(file: &str, count: i64) -> anyhow::Result<()> {
    let db = rusqlite::Connection::open(file)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    for i in 0..count {
        let mut statement = db.prepare_cached("SELECT id, name, score FROM bench WHERE id = $1")?;
        let mut rows = statement.query([i % ROWS + 1])?;
        let name: String = rows
            .next()?
            .ok_or_else(|| anyhow::anyhow!("no row"))?
            .get(1)?;
        anyhow::ensure!(!name.is_empty());
    }
    Ok(())
}
