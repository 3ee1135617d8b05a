//! A running server, whichever provider started or found it.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::scenario::SslMode;

use super::sql::{ConnectSpec, Route, Session, SqlError, on_io_runtime, spawn_on_io};
use super::{Error, Secret, hba};

/// How long a `pg_hba.conf` change may take to be loaded.
const HBA_RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How this harness rewrites the server's `pg_hba.conf`.
#[derive(Debug, Clone)]
pub(crate) enum HbaWriter {
    /// The file is on this machine.
    File(PathBuf),
    /// The administrator is a superuser: the server writes the file itself (`COPY ... TO`).
    Copy,
}

/// How a provider's server is reached and administered.
pub(crate) struct ServerParts {
    pub provider: &'static str,
    pub host: String,
    pub port: u16,
    pub admin: ConnectSpec,
    pub tls: bool,
    /// `None` when the provider does not administer the server's `pg_hba.conf`.
    pub hba: Option<(HbaWriter, Vec<String>)>,
    pub data_dir: Option<PathBuf>,
    pub pid: Option<u32>,
    pub version: String,
    /// Whatever must stay alive as long as the server (a container handle).
    pub keep_alive: Option<Box<dyn Any + Send + Sync>>,
    /// How many empty databases to keep ready for tenants (0 on servers that are not ours).
    pub spares: usize,
}

/// Empty databases made ahead of time. `CREATE DATABASE` copies the whole template (hundreds
/// of milliseconds); renaming a spare takes a few. A spare is created by the administrator,
/// revoked from `PUBLIC` and never connected to, so it is as fresh as a new database.
struct SparePool {
    target: usize,
    ready: std::sync::Mutex<Vec<String>>,
    refilling: std::sync::atomic::AtomicBool,
    next: std::sync::atomic::AtomicU64,
}

struct HbaState {
    writer: HbaWriter,
    header: Vec<String>,
    generation: u64,
    blocks: BTreeMap<u64, Vec<String>>,
    /// The administrator session that rewrites and reloads the file, kept between changes:
    /// every tenant changes the file twice, and a new session costs a backend start.
    admin: Option<Session>,
}

/// A running PostgreSQL server shared by the scenarios of one process.
pub struct Server {
    provider: &'static str,
    host: String,
    port: u16,
    admin: ConnectSpec,
    tls: bool,
    data_dir: Option<PathBuf>,
    pid: Option<u32>,
    version: String,
    hba: Option<tokio::sync::Mutex<HbaState>>,
    spares: SparePool,
    _keep_alive: Option<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("provider", &self.provider)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("version", &self.version)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Server {
    pub(crate) fn new(parts: ServerParts) -> Self {
        Self {
            provider: parts.provider,
            host: parts.host,
            port: parts.port,
            admin: parts.admin,
            tls: parts.tls,
            data_dir: parts.data_dir,
            pid: parts.pid,
            version: parts.version,
            hba: parts.hba.map(|(writer, header)| {
                tokio::sync::Mutex::new(HbaState {
                    writer,
                    header,
                    generation: 0,
                    blocks: BTreeMap::new(),
                    admin: None,
                })
            }),
            spares: SparePool {
                target: parts.spares,
                ready: std::sync::Mutex::new(Vec::new()),
                refilling: std::sync::atomic::AtomicBool::new(false),
                next: std::sync::atomic::AtomicU64::new(1),
            },
            _keep_alive: parts.keep_alive,
        }
    }

    /// Takes a spare database, if one is ready, and starts making a replacement.
    pub(crate) fn take_spare(self: &Arc<Self>) -> Option<String> {
        let spare = self
            .spares
            .ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        self.refill_spares();
        spare
    }

    /// Makes spare databases in the background until the pool is full.
    pub(crate) fn refill_spares(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.spares.target == 0 || self.spares.refilling.swap(true, Ordering::SeqCst) {
            return;
        }
        let server = Arc::clone(self);
        spawn_on_io(async move {
            let filled = server.fill_spares().await;
            server.spares.refilling.store(false, Ordering::SeqCst);
            // A spare made meanwhile may have been taken; failures stop until the next take.
            if filled.is_ok() && server.spare_count() < server.spares.target {
                server.refill_spares();
            }
        });
    }

    /// How many empty databases are ready for tenants to take (see [`Tenant`] setup; servers
    /// this process does not own keep none).
    ///
    /// [`Tenant`]: super::Tenant
    #[must_use]
    pub fn spare_databases(&self) -> usize {
        self.spare_count()
    }

    fn spare_count(&self) -> usize {
        self.spares
            .ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    async fn fill_spares(&self) -> Result<(), SqlError> {
        use std::sync::atomic::Ordering;
        let admin = self.admin("postgres").await?;
        while self.spare_count() < self.spares.target {
            let name = format!(
                "relapse_spare_{}",
                self.spares.next.fetch_add(1, Ordering::Relaxed)
            );
            admin
                .batch(&format!("CREATE DATABASE {}", ident(&name)))
                .await?;
            admin
                .batch(&format!(
                    "REVOKE CONNECT ON DATABASE {} FROM PUBLIC",
                    ident(&name)
                ))
                .await?;
            self.spares
                .ready
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(name);
        }
        Ok(())
    }

    /// The provider that serves this server (`local`, `container`, `url`).
    #[must_use]
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The host clients connect to over TCP.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server offers TLS.
    #[must_use]
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Whether scenario `pg_hba.conf` rules can be installed on this server.
    #[must_use]
    pub fn manages_hba(&self) -> bool {
        self.hba.is_some()
    }

    /// The server's directory, for a server this process started.
    #[must_use]
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// The postmaster's process id, for a server this process started.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The server's version string (`PostgreSQL 15.18 ...`).
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The administrator's role name.
    #[must_use]
    pub fn admin_user(&self) -> &str {
        &self.admin.user
    }

    /// A libpq connection URL for a role, without its password.
    #[must_use]
    pub fn url(&self, user: &str, database: &str, sslmode: SslMode) -> String {
        let sslmode = match sslmode {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
        };
        format!(
            "postgresql://{user}@{}:{}/{database}?sslmode={sslmode}",
            self.host, self.port
        )
    }

    /// Opens a session as the administrator (a superuser).
    ///
    /// # Errors
    /// When the server cannot be reached or refuses the login.
    pub async fn admin(&self, database: &str) -> Result<Session, SqlError> {
        let mut spec = self.admin.clone();
        database.clone_into(&mut spec.database);
        Session::connect(&spec).await
    }

    /// Opens a TCP session as any role, the way a program in the cluster would.
    ///
    /// # Errors
    /// [`SqlError::Server`] with the server's refusal (`28000`, `28P01`, `3D000`, ...).
    pub async fn connect(
        &self,
        user: &str,
        password: Option<&Secret>,
        database: &str,
        sslmode: SslMode,
    ) -> Result<Session, SqlError> {
        Session::connect(&ConnectSpec {
            route: Route::Tcp {
                host: self.host.clone(),
                port: self.port,
            },
            user: user.to_owned(),
            password: password.cloned(),
            database: database.to_owned(),
            sslmode,
        })
        .await
    }

    /// Installs (`Some`) or removes (`None`) one tenant's `pg_hba.conf` lines. An installation
    /// returns once new connections are judged by the new lines; a removal only once the
    /// reload is requested: no connection depends on lines going away (another tenant's lines
    /// never match the same connection, see `hba.rs`), and the next installation waits for a
    /// file that no longer has them.
    pub(crate) async fn set_hba_block(
        self: &Arc<Self>,
        tenant: u64,
        lines: Option<Vec<String>>,
    ) -> Result<(), Error> {
        if self.hba.is_none() {
            return Ok(());
        }
        let server = Arc::clone(self);
        on_io_runtime(async move { server.set_hba_block_now(tenant, lines).await })
            .await
            .map_err(Error::Task)?
    }

    async fn set_hba_block_now(
        &self,
        tenant: u64,
        lines: Option<Vec<String>>,
    ) -> Result<(), Error> {
        let Some(hba) = &self.hba else {
            return Ok(());
        };
        let mut state = hba.lock().await;
        let installing = lines.is_some();
        match lines {
            Some(lines) => state.blocks.insert(tenant, lines),
            None => state.blocks.remove(&tenant),
        };
        state.generation += 1;
        let mut text: Vec<String> = state.header.clone();
        text.push(hba::probe_line(state.generation));
        for (id, lines) in &state.blocks {
            text.push(format!("# scenario tenant {id}"));
            text.extend(lines.iter().cloned());
        }
        let admin = match state.admin.take() {
            Some(admin) => admin,
            None => self
                .admin("postgres")
                .await
                .map_err(admin_err("connect as administrator"))?,
        };
        let written = write_and_reload(&admin, &state.writer, &text).await;
        // A session that failed may be broken: the next change opens a new one.
        if written.is_ok() {
            state.admin = Some(admin);
        }
        written?;
        if installing {
            self.await_generation(state.generation).await
        } else {
            Ok(())
        }
    }

    /// Waits until a new connection is judged by the given generation of `pg_hba.conf`:
    /// `pg_reload_conf()` only signals the postmaster, which reloads a moment later.
    async fn await_generation(&self, generation: u64) -> Result<(), Error> {
        let deadline = Instant::now() + HBA_RELOAD_TIMEOUT;
        let probe = hba::probe_user(generation);
        loop {
            let attempt = self
                .connect(&probe, None, "postgres", SslMode::Disable)
                .await;
            // auth.c: "pg_hba.conf rejects connection for host ..." is what a `reject` line
            // produces; before the reload the probe user matches no line at all.
            if let Err(SqlError::Server(error)) = &attempt
                && error.message.starts_with("pg_hba.conf rejects connection")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::HbaReloadTimeout(HBA_RELOAD_TIMEOUT));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Writes `pg_hba.conf` as `text`, has the server reload it and checks that it parsed.
async fn write_and_reload(
    admin: &Session,
    writer: &HbaWriter,
    text: &[String],
) -> Result<(), Error> {
    match writer {
        HbaWriter::File(path) => {
            let mut body = text.join("\n");
            body.push('\n');
            // Truncating in place keeps the owner and mode the server needs.
            std::fs::write(path, body).map_err(|source| Error::Io {
                action: "write",
                path: path.clone(),
                source,
            })?;
        }
        HbaWriter::Copy => {
            let values = text
                .iter()
                .map(|line| format!("({})", literal(line)))
                .collect::<Vec<_>>()
                .join(",");
            let rows = admin
                .query_text("SHOW hba_file")
                .await
                .map_err(admin_err("read hba_file"))?;
            let Some(path) = rows.first().and_then(|r| r.first()).cloned().flatten() else {
                return Err(Error::HbaInvalid {
                    errors: "SHOW hba_file returned nothing".to_owned(),
                });
            };
            admin
                .batch(&format!("COPY (VALUES {values}) TO {}", literal(&path)))
                .await
                .map_err(admin_err("write pg_hba.conf"))?;
        }
    }
    admin
        .batch("SELECT pg_reload_conf()")
        .await
        .map_err(admin_err("reload the configuration"))?;
    let errors = admin
        .query_text(
            "SELECT line_number::text || ': ' || error FROM pg_hba_file_rules \
             WHERE error IS NOT NULL",
        )
        .await
        .map_err(admin_err("read pg_hba_file_rules"))?;
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::HbaInvalid {
        errors: errors
            .into_iter()
            .filter_map(|row| row.into_iter().next().flatten())
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// An SQL string literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A quoted SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn admin_err(action: impl Into<String>) -> impl FnOnce(SqlError) -> Error {
    let action = action.into();
    move |source| Error::Admin {
        action,
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
    }
}
