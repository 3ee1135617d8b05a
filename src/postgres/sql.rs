//! Talking SQL to a server: sessions as a role, the server's errors with their SQLSTATE, and
//! matching them against what a scenario expects.
//!
//! All client I/O runs on one small runtime owned by this module. Two reasons: a session
//! outlives the test runtime that opened it only if its connection task lives elsewhere (a
//! tenant torn down from `Drop` still works), and every client-side deadline here is wall-clock
//! time even when the caller's runtime runs on a paused, auto-advancing clock.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::scenario::{SqlErrorCheck, SqlErrorExpectation, SslMode};

use super::Secret;

/// How long connecting may take before the attempt counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one statement may run by default.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The error a Postgres server sent: what a scenario's `sqlError` symptom is compared with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServerError {
    /// Five-character SQLSTATE, e.g. `28P01`.
    pub sqlstate: String,
    /// `ERROR`, `FATAL`, ...
    pub severity: String,
    /// The primary message, exactly as the server sent it.
    pub message: String,
    /// The `DETAIL` field, if any.
    pub detail: Option<String>,
    /// The `HINT` field, if any.
    pub hint: Option<String>,
    /// Whether the server refused the connection itself (authentication, `pg_hba.conf`, a
    /// missing database) rather than a statement.
    pub while_connecting: bool,
}

impl ServerError {
    fn from_client_error(error: &tokio_postgres::Error, while_connecting: bool) -> Option<Self> {
        let db = error.as_db_error()?;
        Some(Self {
            sqlstate: db.code().code().to_owned(),
            severity: db.severity().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            hint: db.hint().map(str::to_owned),
            while_connecting,
        })
    }
}

/// Why running SQL did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The server answered with an error (often exactly what a scenario expects).
    #[error(transparent)]
    Server(Box<ServerError>),
    /// No session could be established and the server sent no error (refused, TLS, I/O).
    #[error("failed to connect to postgres at {target} as {user:?} to database {database:?}")]
    Connect {
        /// Where the client connected.
        target: String,
        /// The role.
        user: String,
        /// The database.
        database: String,
        /// The client library's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The session broke while running a statement.
    #[error("failed to run sql as {user:?} on database {database:?}")]
    Client {
        /// The role.
        user: String,
        /// The database.
        database: String,
        /// The client library's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server did not answer in time.
    #[error("postgres did not answer within {0:?}")]
    Timeout(Duration),
    /// The client's TLS configuration could not be built.
    #[error("failed to configure client tls")]
    Tls(#[source] rustls::Error),
    /// The I/O task died.
    #[error("postgres client task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl SqlError {
    /// The server's error, when the server sent one.
    #[must_use]
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Self::Server(error) => Some(error.as_ref()),
            _ => None,
        }
    }
}

/// Where a client reaches a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// TCP (what the stand-in programs and the scenario's roles use).
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A unix socket directory (the local provider's administrator uses it).
    Unix {
        /// The socket directory.
        dir: PathBuf,
        /// The port the socket file is named after.
        port: u16,
    },
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } => write!(f, "{host}:{port}"),
            Self::Unix { dir, port } => write!(f, "{}/.s.PGSQL.{port}", dir.display()),
        }
    }
}

/// Everything needed to open a session.
#[derive(Debug, Clone)]
pub struct ConnectSpec {
    /// Where the server is.
    pub route: Route,
    /// Role to log in as.
    pub user: String,
    /// Its password, if the server asks for one.
    pub password: Option<Secret>,
    /// Database.
    pub database: String,
    /// libpq `sslmode`.
    pub sslmode: SslMode,
}

/// An open session as one role on one database.
pub struct Session {
    client: Arc<Client>,
    user: String,
    database: String,
    timeout: Duration,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a session.
    ///
    /// # Errors
    /// [`SqlError::Server`] when the server refuses the login (`28000`, `28P01`, `3D000`, ...),
    /// other variants when it cannot be reached in [`CONNECT_TIMEOUT`].
    pub async fn connect(spec: &ConnectSpec) -> Result<Self, SqlError> {
        let mut config = tokio_postgres::Config::new();
        match &spec.route {
            Route::Tcp { host, port } => config.host(host).port(*port),
            Route::Unix { dir, port } => config.host_path(dir).port(*port),
        };
        config
            .user(&spec.user)
            .dbname(&spec.database)
            .application_name("relapse")
            .ssl_mode(match spec.sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require => tokio_postgres::config::SslMode::Require,
            })
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(password) = &spec.password {
            config.password(password.expose());
        }
        // Postgres speaks no TLS on unix sockets, and the TLS connector wants a host name.
        let tls = match spec.route {
            Route::Tcp { .. } => Some(client_tls()?),
            Route::Unix { .. } => None,
        };
        let attempt = on_io_runtime(async move {
            let client = match tls {
                Some(tls) => {
                    let (client, connection) =
                        tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tls))
                            .await
                            .map_err(|_| Timed::Elapsed)?
                            .map_err(Timed::Failed)?;
                    // The connection future drives the socket; it ends with the client.
                    tokio::spawn(connection);
                    client
                }
                None => {
                    let (client, connection) = tokio::time::timeout(
                        CONNECT_TIMEOUT,
                        config.connect(tokio_postgres::NoTls),
                    )
                    .await
                    .map_err(|_| Timed::Elapsed)?
                    .map_err(Timed::Failed)?;
                    tokio::spawn(connection);
                    client
                }
            };
            Ok::<_, Timed<tokio_postgres::Error>>(client)
        })
        .await
        .map_err(SqlError::Task)?;
        match attempt {
            Ok(client) => Ok(Self {
                client: Arc::new(client),
                user: spec.user.clone(),
                database: spec.database.clone(),
                timeout: STATEMENT_TIMEOUT,
            }),
            Err(Timed::Elapsed) => Err(SqlError::Timeout(CONNECT_TIMEOUT)),
            Err(Timed::Failed(source)) => Err(ServerError::from_client_error(&source, true)
                .map_or_else(
                    || SqlError::Connect {
                        target: spec.route.to_string(),
                        user: spec.user.clone(),
                        database: spec.database.clone(),
                        source,
                    },
                    |error| SqlError::Server(Box::new(error)),
                )),
        }
    }

    /// The role this session is logged in as.
    #[must_use]
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The database this session is connected to.
    #[must_use]
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Sets how long each later call may wait for the server.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends `sql` as one simple-protocol query, as `psql -c` does: several statements run
    /// in one implicit transaction.
    ///
    /// # Errors
    /// [`SqlError::Server`] with the server's error; other variants when the session breaks.
    pub async fn batch(&self, sql: &str) -> Result<(), SqlError> {
        let sql = sql.to_owned();
        self.with_client(move |client| async move { client.batch_execute(&sql).await })
            .await
    }

    /// Runs a script statement by statement, each in its own transaction, as `psql -f` does
    /// (so `CREATE DATABASE` may follow other statements). Stops at the first error.
    ///
    /// # Errors
    /// As [`Session::batch`], for the first failing statement.
    pub async fn run_script(&self, sql: &str) -> Result<(), SqlError> {
        for statement in split_statements(sql) {
            self.batch(&statement).await?;
        }
        Ok(())
    }

    /// Runs one query and returns its rows as text (`None` for SQL NULL).
    ///
    /// # Errors
    /// As [`Session::batch`].
    pub async fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, SqlError> {
        let sql = sql.to_owned();
        self.with_client(move |client| async move {
            let messages = client.simple_query(&sql).await?;
            Ok(messages
                .into_iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_owned))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect())
        })
        .await
    }

    /// Runs `work` with the underlying client on the I/O runtime, within the session's timeout.
    ///
    /// # Errors
    /// The server's error as [`SqlError::Server`]; a broken session or the timeout otherwise.
    pub async fn with_client<T, F, Fut>(&self, work: F) -> Result<T, SqlError>
    where
        F: FnOnce(Arc<Client>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
        T: Send + 'static,
    {
        let client = Arc::clone(&self.client);
        let timeout = self.timeout;
        let outcome = on_io_runtime(async move {
            tokio::time::timeout(timeout, work(client))
                .await
                .map_err(|_| Timed::Elapsed)?
                .map_err(Timed::Failed)
        })
        .await
        .map_err(SqlError::Task)?;
        match outcome {
            Ok(value) => Ok(value),
            Err(Timed::Elapsed) => Err(SqlError::Timeout(timeout)),
            Err(Timed::Failed(source)) => Err(ServerError::from_client_error(&source, false)
                .map_or_else(
                    || SqlError::Client {
                        user: self.user.clone(),
                        database: self.database.clone(),
                        source,
                    },
                    |error| SqlError::Server(Box::new(error)),
                )),
        }
    }
}

/// A result that either failed or ran out of time.
enum Timed<E> {
    Elapsed,
    Failed(E),
}

/// Runs a future on the module's I/O runtime and waits for it from any runtime.
pub(crate) async fn on_io_runtime<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    io_runtime().spawn(future).await
}

/// Starts a future on the module's I/O runtime without waiting for it.
pub(crate) fn spawn_on_io(future: impl Future<Output = ()> + Send + 'static) {
    drop(io_runtime().spawn(future));
}

/// Runs a future on the I/O runtime from synchronous code (a `Drop` implementation).
///
/// Must not be called from a thread that is itself driving a runtime; callers use a fresh
/// thread.
pub(crate) fn block_on_io<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let handle = io_runtime().spawn(future);
    futures::executor::block_on(handle)
}

fn io_runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        // The runtime lives on its own thread for the rest of the process; statics are never
        // dropped, so nothing would shut it down anyway.
        let spawned = std::thread::Builder::new()
            .name("relapse-postgres-io".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let _ = sender.send(Some(runtime.handle().clone()));
                        runtime.block_on(std::future::pending::<()>());
                    }
                    Err(_) => {
                        let _ = sender.send(None);
                    }
                }
            });
        match spawned.ok().and_then(|_| receiver.recv().ok().flatten()) {
            Some(handle) => handle,
            // Without a thread or a runtime nothing here can work; this is resource exhaustion,
            // not bad input.
            None => panic!("failed to start the postgres client runtime"),
        }
    })
}

/// The client TLS connector: encrypts but does not verify the server's certificate, which is
/// what libpq's `sslmode=prefer` and `sslmode=require` do.
pub(crate) fn client_tls() -> Result<MakeRustlsConnect, SqlError> {
    static CONFIG: OnceLock<Result<rustls::ClientConfig, rustls::Error>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(
            rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth(),
        )
    });
    match config {
        Ok(config) => Ok(MakeRustlsConnect::new(config.clone())),
        Err(error) => Err(SqlError::Tls(error.clone())),
    }
}

/// Accepts any server certificate but still checks handshake signatures.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------

/// The error a scenario expects: an SQLSTATE and, optionally, text the message contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedError {
    /// Five-character SQLSTATE.
    pub sqlstate: String,
    /// Text the server's message must contain.
    pub message: Option<String>,
}

impl From<&SqlErrorExpectation> for ExpectedError {
    fn from(expectation: &SqlErrorExpectation) -> Self {
        Self {
            sqlstate: expectation.sqlstate.clone(),
            message: expectation.message.clone(),
        }
    }
}

impl From<&SqlErrorCheck> for ExpectedError {
    fn from(check: &SqlErrorCheck) -> Self {
        Self {
            sqlstate: check.sqlstate.clone(),
            message: check.message.clone(),
        }
    }
}

/// What running the SQL did, as far as the server is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Everything succeeded.
    Succeeded,
    /// The server sent this error.
    Failed(ServerError),
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Succeeded => f.write_str("success"),
            Self::Failed(error) => write!(f, "SQLSTATE {} {:?}", error.sqlstate, error.message),
        }
    }
}

/// The expected error did not happen: what was expected beside what was observed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, observed {observed}")]
pub struct ErrorMismatch {
    /// What the scenario expects.
    pub expected: ExpectedError,
    /// What happened.
    pub observed: Observed,
}

impl fmt::Display for ExpectedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SQLSTATE {}", self.sqlstate)?;
        if let Some(message) = &self.message {
            write!(f, " with a message containing {message:?}")?;
        }
        Ok(())
    }
}

impl ExpectedError {
    /// Whether a server error is this one: equal SQLSTATE, and the message contains the
    /// expected text (case-sensitive, as the server's wording is exact).
    #[must_use]
    pub fn matches(&self, error: &ServerError) -> bool {
        error.sqlstate == self.sqlstate
            && self
                .message
                .as_deref()
                .is_none_or(|text| error.message.contains(text))
    }

    /// Compares the outcome of running SQL with this expectation.
    ///
    /// # Errors
    /// The outer error is a failure that is not the server's answer (unreachable server,
    /// timeout): the check could not be made. The inner `Err` is a [`ErrorMismatch`].
    pub fn verify(
        &self,
        outcome: Result<(), SqlError>,
    ) -> Result<Result<ServerError, ErrorMismatch>, SqlError> {
        let observed = match outcome {
            Ok(()) => Observed::Succeeded,
            Err(SqlError::Server(error)) if self.matches(&error) => return Ok(Ok(*error)),
            Err(SqlError::Server(error)) => Observed::Failed(*error),
            Err(other) => return Err(other),
        };
        Ok(Err(ErrorMismatch {
            expected: self.clone(),
            observed,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

/// Splits SQL text into statements at top-level semicolons, as psql does: quotes, quoted
/// identifiers, dollar quotes and comments are respected. Empty statements are dropped.
#[must_use]
pub fn split_statements(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' | '"' => {
                // E'...' strings take backslash escapes; plain ones double the quote.
                let backslashes = c == '\''
                    && i > 0
                    && matches!(chars[i - 1], 'e' | 'E')
                    && (i < 2 || !chars[i - 2].is_alphanumeric() && chars[i - 2] != '_');
                let end = scan_quoted(&chars, i, c, backslashes);
                current.extend(&chars[i..end]);
                i = end;
            }
            '-' if next == Some('-') => {
                let end = chars[i..]
                    .iter()
                    .position(|&ch| ch == '\n')
                    .map_or(chars.len(), |p| i + p);
                current.extend(&chars[i..end]);
                i = end;
            }
            '/' if next == Some('*') => {
                let end = scan_block_comment(&chars, i);
                current.extend(&chars[i..end]);
                i = end;
            }
            '$' => {
                if let Some(tag_end) = dollar_tag_end(&chars, i) {
                    let tag: Vec<char> = chars[i..=tag_end].to_vec();
                    let body_start = tag_end + 1;
                    let close = (body_start..chars.len())
                        .find(|&j| chars[j..].starts_with(&tag))
                        .map_or(chars.len(), |j| j + tag.len());
                    current.extend(&chars[i..close]);
                    i = close;
                } else {
                    current.push(c);
                    i += 1;
                }
            }
            ';' => {
                push_statement(&mut statements, &mut current);
                i += 1;
            }
            _ => {
                current.push(c);
                i += 1;
            }
        }
    }
    push_statement(&mut statements, &mut current);
    statements
}

fn push_statement(statements: &mut Vec<String>, current: &mut String) {
    let statement = current.trim();
    if !statement.is_empty() && !is_only_comments(statement) {
        statements.push(statement.to_owned());
    }
    current.clear();
}

fn is_only_comments(statement: &str) -> bool {
    statement
        .lines()
        .all(|line| line.trim().is_empty() || line.trim_start().starts_with("--"))
}

fn scan_quoted(chars: &[char], start: usize, quote: char, backslashes: bool) -> usize {
    let mut j = start + 1;
    while j < chars.len() {
        if backslashes && chars[j] == '\\' {
            j += 2;
            continue;
        }
        if chars[j] == quote {
            if chars.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    chars.len()
}

fn scan_block_comment(chars: &[char], start: usize) -> usize {
    // Block comments nest in Postgres.
    let mut depth = 0usize;
    let mut j = start;
    while j + 1 < chars.len() {
        if chars[j] == '/' && chars[j + 1] == '*' {
            depth += 1;
            j += 2;
        } else if chars[j] == '*' && chars[j + 1] == '/' {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    chars.len()
}

/// The index of the closing `$` of a dollar-quote tag starting at `start`, if it is one.
fn dollar_tag_end(chars: &[char], start: usize) -> Option<usize> {
    // `$1` is a parameter and `a$b` part of an identifier, not a quote.
    if start > 0 && (chars[start - 1].is_alphanumeric() || chars[start - 1] == '_') {
        return None;
    }
    let mut j = start + 1;
    while j < chars.len() {
        match chars[j] {
            '$' => return Some(j),
            ch if ch.is_alphabetic() || ch == '_' => j += 1,
            ch if ch.is_ascii_digit() && j > start + 1 => j += 1,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(sqlstate: &str, message: &str) -> ServerError {
        ServerError {
            sqlstate: sqlstate.to_owned(),
            severity: "ERROR".to_owned(),
            message: message.to_owned(),
            detail: None,
            hint: None,
            while_connecting: false,
        }
    }

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let sql = "CREATE TABLE t (x text DEFAULT 'a;b'); -- c; d\n\
                   INSERT INTO \"we;ird\" VALUES (E'it\\'s;'); \
                   CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\
                   /* a /* nested; */ comment; */ SELECT $1;;  ";
        assert_eq!(
            split_statements(sql),
            vec![
                "CREATE TABLE t (x text DEFAULT 'a;b')",
                "-- c; d\nINSERT INTO \"we;ird\" VALUES (E'it\\'s;')",
                "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
                "/* a /* nested; */ comment; */ SELECT $1",
            ]
        );
    }

    #[test]
    fn drops_empty_and_comment_only_statements() {
        assert!(split_statements(" ; ;\n-- nothing\n").is_empty());
        assert_eq!(split_statements("SELECT 1"), vec!["SELECT 1"]);
    }

    #[test]
    fn doubled_quotes_stay_inside_strings() {
        assert_eq!(
            split_statements("SELECT 'it''s; fine'; SELECT 2"),
            vec!["SELECT 'it''s; fine'", "SELECT 2"]
        );
    }

    #[test]
    fn expectation_matches_sqlstate_and_message_fragment() {
        let expected = ExpectedError {
            sqlstate: "42501".to_owned(),
            message: Some("permission denied to create database".to_owned()),
        };
        assert!(expected.matches(&error("42501", "permission denied to create database")));
        assert!(!expected.matches(&error("42501", "permission denied for table t")));
        assert!(!expected.matches(&error("28P01", "permission denied to create database")));
        let any_message = ExpectedError {
            sqlstate: "42P01".to_owned(),
            message: None,
        };
        assert!(any_message.matches(&error("42P01", "relation \"x\" does not exist")));
    }

    #[test]
    fn verify_reports_success_and_other_errors_as_mismatches() {
        let expected = ExpectedError {
            sqlstate: "42P01".to_owned(),
            message: None,
        };
        let mismatch = expected.verify(Ok(())).unwrap().unwrap_err();
        assert_eq!(mismatch.observed, Observed::Succeeded);
        assert_eq!(
            mismatch.to_string(),
            "expected SQLSTATE 42P01, observed success"
        );
        let other = error("42501", "permission denied for schema public");
        let mismatch = expected
            .verify(Err(SqlError::Server(Box::new(other.clone()))))
            .unwrap()
            .unwrap_err();
        assert_eq!(mismatch.observed, Observed::Failed(other));
        let hit = error("42P01", "relation \"namespace_metadata\" does not exist");
        assert_eq!(
            expected
                .verify(Err(SqlError::Server(Box::new(hit.clone()))))
                .unwrap(),
            Ok(hit)
        );
        assert!(
            expected
                .verify(Err(SqlError::Timeout(Duration::from_secs(1))))
                .is_err()
        );
    }
}
