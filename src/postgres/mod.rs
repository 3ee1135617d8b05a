//! PostgreSQL servers for scenarios: ephemeral local servers, containers and existing servers.
//!
//! - [`Provider`] supplies one server per process: [`LocalProvider`] (default) starts one from
//!   the machine's binaries (and more while scenarios declaring the same names run at once),
//!   [`ContainerProvider`] runs a container, [`UrlProvider`] uses an existing server. [`shared`]
//!   picks one from the environment.
//! - [`Tenant`] is one scenario's share of that server: its own roles, databases and
//!   `pg_hba.conf` rules under the names the scenario declares, dropped again afterwards.
//! - [`Session`] runs SQL as a role; failures carry the server's SQLSTATE and exact message
//!   ([`ServerError`]), matched against a scenario's expectations by [`ExpectedError`].

mod container;
mod error;
mod hba;
mod local;
mod provider;
mod secret;
mod server;
mod sql;
mod tenant;
mod url;
mod watchdog;

pub use container::{ContainerProvider, IMAGE_ENV, docker_daemon};
pub use error::{Error, Unavailable};
pub use local::{BIN_ENV, Binaries, LocalOptions, LocalProvider, find_binaries};
pub use provider::{PROVIDER_ENV, Provider, ProviderKind, URL_ENV, shared};
pub use secret::Secret;
pub use server::Server;
pub use sql::{
    CONNECT_TIMEOUT, ConnectSpec, ErrorMismatch, ExpectedError, Observed, Route, STATEMENT_TIMEOUT,
    ServerError, Session, SqlError, split_statements,
};
pub use tenant::{Names, StepFailure, Tenant, TenantOptions};
pub use url::UrlProvider;
