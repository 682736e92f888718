//! The PostgreSQL backend: tokio-postgres connections pooled by deadpool, TLS through rustls when
//! the URL's `sslmode` asks for it.
//!
//! A guest's connection is a pooled connection of its own until it drops it. A connection the
//! server closed is not given out again (deadpool checks on every take), so a restarted server
//! heals by itself; a connection left inside a transaction, or whose statement was stopped at
//! its deadline, is closed rather than given back, and the stopped statement is cancelled.
//! Parameters arrive as text and are converted to the types the server says the statement takes.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures::TryStreamExt as _;
use postgres_types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::config::SslMode;
use tokio_postgres::{CancelToken, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Database, Session, until};
use crate::result::{Cell, Gathered, Value};
use crate::{Bounds, Failure, Statement};

/// How long opening a connection to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A PostgreSQL database and its pool.
pub(crate) struct Postgres {
    pool: Pool,
    tls: MakeRustlsConnect,
}

/// `url` with any password replaced by `***`, for the banner and errors.
pub(crate) fn redact(url: &str) -> String {
    let mut redacted = url.to_owned();
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            let start = scheme_end + 3 + colon + 1;
            redacted.replace_range(start..scheme_end + 3 + at, "***");
        }
    }
    if let Some(query) = redacted.find('?') {
        let (base, params) = redacted.split_at(query + 1);
        let params: Vec<String> = params
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        redacted = format!("{base}{}", params.join("&"));
    }
    redacted
}

/// Checks that `url`, the location of the database `name`, is one tokio-postgres reads.
pub(crate) fn check_url(name: &str, url: &str) -> anyhow::Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|err| {
        anyhow::anyhow!(
            "the URL of the database `{name}` ({}) is not a PostgreSQL URL: {err}",
            redact(url)
        )
    })?;
    // TLS only when the URL asks for it (`sslmode=prefer` or `sslmode=require`).
    if !url.contains("sslmode=") {
        config.ssl_mode(SslMode::Disable);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// TLS verified against the web's root certificates.
fn tls() -> MakeRustlsConnect {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    MakeRustlsConnect::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

impl Postgres {
    /// A pool for the database `name` at `url`, with one connection made now to check it.
    pub(crate) async fn connect(name: &str, url: &str, pool_size: usize) -> anyhow::Result<Self> {
        let config = check_url(name, url)?;
        let tls = tls();
        let manager = Manager::from_config(
            config,
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()?;
        let first = pool.get().await.map_err(|err| {
            anyhow::anyhow!(
                "the PostgreSQL database `{name}` at {} cannot be reached: {}",
                redact(url),
                describe_pool_error(&err)
            )
        })?;
        drop(first);
        Ok(Self { pool, tls })
    }
}

fn describe_pool_error(err: &deadpool_postgres::PoolError) -> String {
    match err {
        deadpool_postgres::PoolError::Backend(err) => describe(err),
        other => other.to_string(),
    }
}

#[async_trait::async_trait]
impl Database for Postgres {
    async fn connect(&self, deadline: Option<Instant>) -> Result<Arc<dyn Session>, Failure> {
        let object = until(deadline, self.pool.get()).await?.map_err(|err| {
            Failure::Unavailable(format!(
                "the database server cannot be reached: {}",
                describe_pool_error(&err)
            ))
        })?;
        Ok(Arc::new(PgSession {
            object: Some(object),
            tls: self.tls.clone(),
            in_transaction: AtomicBool::new(false),
            broken: Arc::new(AtomicBool::new(false)),
        }))
    }
}

/// A pooled connection lent to a guest.
struct PgSession {
    object: Option<Object>,
    tls: MakeRustlsConnect,
    /// Whether the guest began a transaction it has not ended.
    in_transaction: AtomicBool,
    /// Whether a statement was stopped or the connection failed: it is not given back.
    broken: Arc<AtomicBool>,
}

impl Drop for PgSession {
    fn drop(&mut self) {
        let discard =
            self.in_transaction.load(Ordering::Relaxed) || self.broken.load(Ordering::Relaxed);
        if discard && let Some(object) = self.object.take() {
            // Taken out of the pool and dropped: the connection closes, and the server rolls
            // back what it left open.
            drop(Object::take(object));
        }
    }
}

/// Cancels the statement on the server, and keeps its connection from being reused, when the
/// future running it is dropped unfinished (its request was stopped).
struct CancelOnDrop {
    token: CancelToken,
    tls: MakeRustlsConnect,
    broken: Arc<AtomicBool>,
    finished: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.broken.store(true, Ordering::Relaxed);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (token, tls) = (self.token.clone(), self.tls.clone());
            runtime.spawn(async move { token.cancel_query(tls).await });
        }
    }
}

impl PgSession {
    fn client(&self) -> Result<&Object, Failure> {
        self.object
            .as_ref()
            .ok_or_else(|| Failure::Unavailable("the connection is closed".into()))
    }

    /// Prepares `statement` (once per connection) and converts its parameters.
    async fn prepare(
        &self,
        statement: &Statement,
        deadline: Option<Instant>,
    ) -> Result<(tokio_postgres::Statement, Vec<TextParam>), Failure> {
        let client = self.client()?;
        let sql = super::placeholders::for_postgres(&statement.sql);
        let prepared = until(deadline, client.prepare_cached(&sql))
            .await?
            .map_err(|err| self.refused(&err))?;
        let expected = prepared.params().len();
        if expected != statement.params.len() {
            return Err(Failure::Refused(format!(
                "the statement takes {expected} parameter(s), and {} were given",
                statement.params.len()
            )));
        }
        let params = statement.params.iter().cloned().map(TextParam).collect();
        if let Some(begins) = transaction_effect(&statement.sql) {
            self.in_transaction.store(begins, Ordering::Relaxed);
        }
        Ok((prepared, params))
    }

    fn watch(&self) -> Result<CancelOnDrop, Failure> {
        Ok(CancelOnDrop {
            token: self.client()?.cancel_token(),
            tls: self.tls.clone(),
            broken: self.broken.clone(),
            finished: false,
        })
    }

    /// The server's error as the guest reads it; a lost connection is not given back.
    fn refused(&self, err: &tokio_postgres::Error) -> Failure {
        if err.is_closed() || err.as_db_error().is_none() {
            self.broken.store(true, Ordering::Relaxed);
            return Failure::Unavailable(format!(
                "the database server cannot be reached: {}",
                describe(err)
            ));
        }
        Failure::Refused(describe(err))
    }
}

/// The server's message and code, or what went wrong on the way.
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => match err.source() {
            Some(source) => format!("{err}: {source}"),
            None => err.to_string(),
        },
    }
}

/// Whether `sql` begins (`Some(true)`) or ends (`Some(false)`) a transaction block. One
/// prepared statement is one SQL command, so its first keyword says it.
fn transaction_effect(sql: &str) -> Option<bool> {
    let mut words = skip_comments(sql)
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|word| !word.is_empty());
    let first = words.next()?.to_ascii_uppercase();
    match first.as_str() {
        "BEGIN" | "START" => Some(true),
        "COMMIT" | "END" | "ABORT" => Some(false),
        "ROLLBACK" if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("TO")) => Some(false),
        "PREPARE"
            if words
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("TRANSACTION")) =>
        {
            Some(false)
        }
        _ => None,
    }
}

/// `sql` from its first word on, past white space and comments.
fn skip_comments(mut sql: &str) -> &str {
    loop {
        sql = sql.trim_start();
        if let Some(rest) = sql.strip_prefix("--") {
            sql = rest.split_once('\n').map_or("", |(_, rest)| rest);
        } else if let Some(rest) = sql.strip_prefix("/*") {
            sql = rest.split_once("*/").map_or("", |(_, rest)| rest);
        } else {
            return sql;
        }
    }
}

#[async_trait::async_trait]
impl Session for PgSession {
    async fn query(
        &self,
        statement: &Statement,
        bounds: Bounds,
        deadline: Option<Instant>,
    ) -> Result<Vec<Cell>, Failure> {
        let (prepared, params) = self.prepare(statement, deadline).await?;
        let client = self.client()?;
        let mut watch = self.watch()?;
        let gather = async {
            let rows = client
                .query_raw(&prepared, params.iter())
                .await
                .map_err(|err| self.refused(&err))?;
            let mut rows = std::pin::pin!(rows);
            let mut gathered = Gathered::new(bounds);
            while let Some(row) = rows.try_next().await.map_err(|err| self.refused(&err))? {
                gathered.begin_row()?;
                for (index, column) in row.columns().iter().enumerate() {
                    gathered.push(column.name(), value(&row, index)?)?;
                }
            }
            Ok(gathered.into_cells())
        };
        let outcome = until(deadline, gather).await?;
        watch.finished = true;
        outcome
    }

    async fn exec(&self, statement: &Statement, deadline: Option<Instant>) -> Result<u64, Failure> {
        let (prepared, params) = self.prepare(statement, deadline).await?;
        let client = self.client()?;
        let mut watch = self.watch()?;
        let outcome = until(deadline, client.execute_raw(&prepared, params.iter())).await?;
        watch.finished = true;
        outcome.map_err(|err| self.refused(&err))
    }
}

/// The `index`-th value of `row` in the WIT's types.
fn value(row: &Row, index: usize) -> Result<Value, Failure> {
    let column = &row.columns()[index];
    let wrong = |err: tokio_postgres::Error| {
        Failure::Refused(format!("column `{}`: {}", column.name(), describe(&err)))
    };
    macro_rules! get {
        ($type:ty, $case:expr) => {
            row.try_get::<_, Option<$type>>(index)
                .map_err(wrong)?
                .map_or(Value::Null, $case)
        };
    }
    Ok(match *column.type_() {
        Type::BOOL => get!(bool, Value::Boolean),
        Type::INT2 => get!(i16, |n| Value::Int32(n.into())),
        Type::INT4 => get!(i32, Value::Int32),
        Type::INT8 => get!(i64, Value::Int64),
        Type::OID => get!(u32, Value::Uint32),
        Type::FLOAT4 => get!(f32, |x| Value::Float(x.into())),
        Type::FLOAT8 => get!(f64, Value::Double),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            get!(&str, |text| Value::Str(text.to_owned()))
        }
        Type::JSON | Type::JSONB => get!(Json, |json| Value::Str(json.0)),
        Type::BYTEA => get!(Vec<u8>, Value::Binary),
        Type::DATE => get!(chrono::NaiveDate, |day| Value::Date(day.to_string())),
        Type::TIME => get!(chrono::NaiveTime, |time| Value::Time(time.to_string())),
        Type::TIMESTAMP => get!(chrono::NaiveDateTime, |at| Value::Timestamp(at.to_string())),
        Type::TIMESTAMPTZ => get!(chrono::DateTime<chrono::Utc>, |at| {
            Value::Timestamp(at.to_rfc3339())
        }),
        ref other => {
            return Err(Failure::Refused(format!(
                "column `{name}` has the type {other}, which wasi:sql has no case for: cast it \
                 in the query (`{name}::text`)",
                name = column.name()
            )));
        }
    })
}

/// A `json` or `jsonb` value's text.
struct Json(String);

impl<'a> FromSql<'a> for Json {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        let text = match *ty {
            // jsonb's binary form is a version byte, then the text.
            Type::JSONB => raw.get(1..).ok_or("an empty jsonb value")?,
            _ => raw,
        };
        Ok(Self(std::str::from_utf8(text)?.to_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB)
    }
}

/// A parameter as the guest gives it, text, sent as the type the server says the statement
/// takes there.
#[derive(Debug)]
struct TextParam(String);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres_types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let text = self.0.as_str();
        let number = text.trim();
        match *ty {
            Type::BOOL => parse_bool(text)?.to_sql(ty, out),
            Type::INT2 => number.parse::<i16>()?.to_sql(ty, out),
            Type::INT4 => number.parse::<i32>()?.to_sql(ty, out),
            Type::INT8 => number.parse::<i64>()?.to_sql(ty, out),
            Type::OID => number.parse::<u32>()?.to_sql(ty, out),
            Type::FLOAT4 => number.parse::<f32>()?.to_sql(ty, out),
            Type::FLOAT8 => number.parse::<f64>()?.to_sql(ty, out),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                text.to_sql(ty, out)
            }
            Type::JSON => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            Type::JSONB => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            Type::BYTEA => match text.strip_prefix("\\x") {
                Some(hex) => decode_hex(hex)?.to_sql(ty, out),
                None => text.as_bytes().to_sql(ty, out),
            },
            Type::DATE => chrono::NaiveDate::parse_from_str(number, "%Y-%m-%d")?.to_sql(ty, out),
            Type::TIME => number.parse::<chrono::NaiveTime>()?.to_sql(ty, out),
            Type::TIMESTAMP => parse_timestamp(number)?.to_sql(ty, out),
            Type::TIMESTAMPTZ => match chrono::DateTime::parse_from_rfc3339(number) {
                Ok(at) => at.with_timezone(&chrono::Utc).to_sql(ty, out),
                Err(_) => parse_timestamp(number)?.and_utc().to_sql(ty, out),
            },
            ref other => Err(format!(
                "a parameter of type {other} cannot be given as text; write `$N::text` and cast \
                 it in SQL"
            )
            .into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "on" => Ok(true),
        "false" | "f" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{}` is not a boolean", text.escape_debug())),
    }
}

fn parse_timestamp(text: &str) -> Result<chrono::NaiveDateTime, chrono::ParseError> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err("a \\x value needs an even number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("`{}` is not hex", hex.escape_debug()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/app?sslmode=require"),
            "postgres://app:***@db:5432/app?sslmode=require"
        );
        assert_eq!(
            redact("postgres://db/app?user=app&password=s3cret"),
            "postgres://db/app?user=app&password=***"
        );
        assert_eq!(redact("postgres://app@db/app"), "postgres://app@db/app");
        let err = check_url("main", "postgres://app:s3cret@db:notaport/app").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err.to_string().contains("`main`"), "{err}");
    }

    #[test]
    fn the_first_keyword_says_whether_a_transaction_begins_or_ends() {
        assert_eq!(transaction_effect("  begin"), Some(true));
        assert_eq!(
            transaction_effect("-- note\n/* x */ START TRANSACTION"),
            Some(true)
        );
        assert_eq!(transaction_effect("commit"), Some(false));
        assert_eq!(transaction_effect("ROLLBACK"), Some(false));
        assert_eq!(transaction_effect("rollback to savepoint a"), None);
        assert_eq!(transaction_effect("SELECT 'begin'"), None);
        assert_eq!(transaction_effect(""), None);
    }

    #[test]
    fn text_parameters_become_the_types_asked_for() {
        let mut out = postgres_types::private::BytesMut::new();
        let param = |text: &str| TextParam(text.to_owned());
        assert!(param("42").to_sql(&Type::INT4, &mut out).is_ok());
        assert!(param("forty").to_sql(&Type::INT4, &mut out).is_err());
        assert!(param("t").to_sql(&Type::BOOL, &mut out).is_ok());
        assert!(param("2024-02-29").to_sql(&Type::DATE, &mut out).is_ok());
        assert!(
            param("2024-02-29 12:34:56")
                .to_sql(&Type::TIMESTAMP, &mut out)
                .is_ok()
        );
        assert_eq!(decode_hex("00ff").unwrap(), [0, 255]);
        let err = param("1")
            .to_sql(&Type::NUMERIC, &mut out)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("$N::text"), "{err}");
    }
}
