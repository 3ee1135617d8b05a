//! The errors of the Postgres layer.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why a provider cannot run on this machine, and what would make it run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("postgres provider `{provider}` is unavailable: {reason} ({remedy})")]
pub struct Unavailable {
    /// The provider's name (`local`, `container`, `url`).
    pub provider: &'static str,
    /// What is missing.
    pub reason: String,
    /// What the user can do about it.
    pub remedy: String,
}

/// Everything that can go wrong while providing a server or managing a tenant on it.
///
/// Errors a scenario expects (a server answering with SQLSTATE `28P01`, say) are not in here:
/// they are [`SqlError::Server`](super::SqlError::Server) values returned by the SQL helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The provider cannot run here; a trial should be ignored with this reason.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The server cannot do what the scenario asks (e.g. `pg_hba.conf` rules on a server the
    /// provider does not administer); a trial should be ignored with this reason.
    #[error("postgres provider `{provider}` does not support {what}")]
    Unsupported {
        /// The provider's name.
        provider: &'static str,
        /// The unsupported feature.
        what: String,
    },
    /// A program could not be started.
    #[error("failed to run {program}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("{program} exited with {status}; its output ends with:\n{output}")]
    CommandFailed {
        /// The program.
        program: PathBuf,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its output.
        output: String,
    },
    /// The server process exited while starting.
    #[error(
        "postgres server in {dir} exited during startup with {status}; its log ends with:\n{log_tail}"
    )]
    ExitedDuringStartup {
        /// The server's directory.
        dir: PathBuf,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of the server log.
        log_tail: String,
    },
    /// The server did not become ready before its deadline.
    #[error(
        "postgres server in {dir} was not ready within {timeout:?}; its log ends with:\n{log_tail}"
    )]
    StartTimeout {
        /// The server's directory.
        dir: PathBuf,
        /// The deadline.
        timeout: Duration,
        /// The last lines of the server log.
        log_tail: String,
    },
    /// A file or directory could not be prepared.
    #[error("failed to {action} {path}")]
    Io {
        /// What was being done (`create`, `write`, `chown`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The server's TLS certificate could not be generated.
    #[error("failed to generate the server's tls certificate")]
    Certificate(#[source] rcgen::Error),
    /// The client's TLS configuration could not be built.
    #[error("failed to configure client tls")]
    ClientTls(#[source] rustls::Error),
    /// The environment names a provider that does not exist.
    #[error("unknown postgres provider {0:?} (expected local, container or url)")]
    UnknownProvider(String),
    /// The tenant's names were released (it was torn down) before this use.
    #[error("the tenant's postgres names were already released")]
    Released,
    /// The provider was shut down and serves no more servers.
    #[error("postgres provider `{0}` was shut down")]
    ShutDown(&'static str),
    /// A connection URL could not be parsed.
    #[error("invalid postgres connection url (from {origin})")]
    InvalidUrl {
        /// Where the URL came from (an environment variable, say); never the URL itself,
        /// which may hold a password.
        origin: String,
        /// The parser's complaint.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A role or database name from the scenario cannot be used.
    #[error("invalid postgres {kind} name {name:?}: {reason}")]
    InvalidName {
        /// `role` or `database`.
        kind: &'static str,
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A role or database exists on the server and was not created by this harness.
    #[error("postgres {kind} {name:?} already exists on the server and was not created by relapse")]
    Foreign {
        /// `role` or `database`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// Another scenario held one of the names for longer than the lease timeout.
    #[error("postgres names {names:?} stayed in use by another scenario for {timeout:?}")]
    NamesBusy {
        /// The names this scenario waited for.
        names: Vec<String>,
        /// How long it waited.
        timeout: Duration,
    },
    /// The server rejected the generated `pg_hba.conf`.
    #[error("postgres rejected the generated pg_hba.conf: {errors}")]
    HbaInvalid {
        /// The errors from `pg_hba_file_rules`.
        errors: String,
    },
    /// The server did not load the new `pg_hba.conf` before the deadline.
    #[error("postgres did not load the new pg_hba.conf within {0:?}")]
    HbaReloadTimeout(Duration),
    /// An administrative SQL command failed.
    #[error("failed to {action}")]
    Admin {
        /// What was being done, e.g. `create role "backstage"`.
        action: String,
        /// The failure.
        #[source]
        source: Box<super::SqlError>,
    },
    /// The container runtime failed.
    #[error("failed to {action} the postgres container")]
    Container {
        /// What was being done.
        action: &'static str,
        /// What testcontainers said.
        #[source]
        source: testcontainers::TestcontainersError,
    },
    /// A background task died.
    #[error("postgres background task failed")]
    Task(#[source] tokio::task::JoinError),
}
