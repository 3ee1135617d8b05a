//! An existing server, given by a connection URL.
//!
//! The harness does not administer such a server's `pg_hba.conf` (scenarios with `hba:` rules
//! are unsupported there) and cannot switch its TLS; the URL's role must be able to create
//! roles and databases (a superuser, or `CREATEROLE` and `CREATEDB` as on RDS).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use tokio::sync::OnceCell;

use crate::scenario::SslMode;

use super::server::ServerParts;
use super::sql::{ConnectSpec, Route, Session, SqlError};
use super::{Error, Provider, Secret, Server, Unavailable};

const NAME: &str = "url";

/// A server given by a URL such as `postgresql://admin:pw@db.example:5432/postgres`.
pub struct UrlProvider {
    url: Option<String>,
    origin: String,
    server: OnceCell<Arc<Server>>,
    shut_down: AtomicBool,
}

impl std::fmt::Debug for UrlProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("UrlProvider")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl UrlProvider {
    /// A provider for this URL; `origin` says where it came from, for error messages (the URL
    /// itself is never shown: it may hold a password).
    #[must_use]
    pub fn new(url: impl Into<String>, origin: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            origin: origin.into(),
            server: OnceCell::new(),
            shut_down: AtomicBool::new(false),
        }
    }

    /// A provider for the URL in an environment variable (unavailable when it is unset).
    #[must_use]
    pub fn from_env(variable: &str) -> Self {
        Self {
            url: std::env::var(variable).ok().filter(|url| !url.is_empty()),
            origin: format!("environment variable {variable}"),
            server: OnceCell::new(),
            shut_down: AtomicBool::new(false),
        }
    }

    async fn connect(&self) -> Result<Arc<Server>, Error> {
        let Some(url) = &self.url else {
            return Err(Unavailable {
                provider: NAME,
                reason: format!("no connection url in {}", self.origin),
                remedy: "set it to postgresql://<admin>:<password>@<host>:<port>/postgres"
                    .to_owned(),
            }
            .into());
        };
        let config = tokio_postgres::Config::from_str(url).map_err(|source| Error::InvalidUrl {
            origin: self.origin.clone(),
            source,
        })?;
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let (route, host) = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Unix(dir)) => (
                Route::Unix {
                    dir: dir.clone(),
                    port,
                },
                "localhost".to_owned(),
            ),
            Some(tokio_postgres::config::Host::Tcp(host)) => (
                Route::Tcp {
                    host: host.clone(),
                    port,
                },
                host.clone(),
            ),
            None => (
                Route::Tcp {
                    host: "localhost".to_owned(),
                    port,
                },
                "localhost".to_owned(),
            ),
        };
        let admin = ConnectSpec {
            route,
            user: config.get_user().unwrap_or("postgres").to_owned(),
            password: config
                .get_password()
                .map(|p| Secret::new(String::from_utf8_lossy(p).into_owned())),
            database: "postgres".to_owned(),
            sslmode: match config.get_ssl_mode() {
                tokio_postgres::config::SslMode::Disable => SslMode::Disable,
                tokio_postgres::config::SslMode::Require => SslMode::Require,
                _ => SslMode::Prefer,
            },
        };
        let (version, tls) = inspect(&admin).await?;
        Ok(Arc::new(Server::new(ServerParts {
            provider: NAME,
            host,
            port,
            admin,
            tls,
            hba: None,
            data_dir: None,
            pid: None,
            version,
            keep_alive: None,
            spares: 0,
        })))
    }
}

/// The server's version and whether it offers TLS.
pub(crate) async fn inspect(admin: &ConnectSpec) -> Result<(String, bool), Error> {
    let session = Session::connect(admin)
        .await
        .map_err(super::server::admin_err("connect as administrator"))?;
    let rows = session
        .query_text("SELECT version()")
        .await
        .map_err(super::server::admin_err("read the server version"))?;
    let version = rows
        .first()
        .and_then(|row| row.first().cloned().flatten())
        .unwrap_or_default();
    let tls = match &admin.route {
        Route::Unix { .. } => false,
        Route::Tcp { .. } => {
            let mut probe = admin.clone();
            probe.sslmode = SslMode::Require;
            match Session::connect(&probe).await {
                Ok(_) => true,
                Err(SqlError::Server(_) | SqlError::Connect { .. }) => false,
                Err(other) => {
                    return Err(super::server::admin_err("probe the server for tls")(other));
                }
            }
        }
    };
    Ok((version, tls))
}

impl Provider for UrlProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn server(&self, tls: bool) -> BoxFuture<'_, Result<Arc<Server>, Error>> {
        Box::pin(async move {
            if self.shut_down.load(Ordering::SeqCst) {
                return Err(Error::ShutDown(NAME));
            }
            let server = self.server.get_or_try_init(|| self.connect()).await?;
            if server.tls() != tls {
                return Err(Error::Unsupported {
                    provider: NAME,
                    what: if tls {
                        "tls: the server does not offer it".to_owned()
                    } else {
                        "a server without tls: this one offers it".to_owned()
                    },
                });
            }
            Ok(Arc::clone(server))
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), Error>> {
        // The server is not ours to stop; tenants clean up after themselves.
        self.shut_down.store(true, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_url_is_unavailable() {
        let provider = UrlProvider::from_env("RELAPSE_TEST_SURELY_UNSET_URL");
        let error = provider.server(true).await.unwrap_err();
        assert!(
            matches!(&error, Error::Unavailable(u) if u.reason.contains("RELAPSE_TEST_SURELY_UNSET_URL")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn bad_url_names_its_origin_not_its_text() {
        let provider = UrlProvider::new("postgresql://u:secret@host:notaport/db", "the test");
        let error = provider.server(true).await.unwrap_err();
        let shown = format!("{error} {error:?} {provider:?}");
        assert!(shown.contains("the test"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
