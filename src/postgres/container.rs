//! A PostgreSQL container started with testcontainers (needs a docker daemon).
//!
//! The official `postgres` image ships Debian's snakeoil certificate, which the TLS server
//! uses. A watchdog (see `watchdog.rs`) removes the containers with `docker rm -f` when the
//! test process ends, whatever way it ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};
use tokio::sync::OnceCell;

use crate::scenario::SslMode;

use super::server::{HbaWriter, ServerParts};
use super::sql::{ConnectSpec, Route, Session};
use super::watchdog::Watchdog;
use super::{Error, Provider, Secret, Server, Unavailable};

const NAME: &str = "container";
/// Environment variable naming the image, e.g. `postgres:16`.
pub const IMAGE_ENV: &str = "RELAPSE_POSTGRES_IMAGE";
const DEFAULT_IMAGE: (&str, &str) = ("postgres", "16");
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Containers started from the official `postgres` image: one with TLS and, if asked, one
/// without, each on first use.
pub struct ContainerProvider {
    image: (String, String),
    with_tls: OnceCell<Arc<Server>>,
    without_tls: OnceCell<Arc<Server>>,
    watchdogs: Mutex<Vec<Watchdog>>,
    shut_down: AtomicBool,
}

impl std::fmt::Debug for ContainerProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerProvider")
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

impl Default for ContainerProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl ContainerProvider {
    /// A provider using the image named by [`IMAGE_ENV`], default `postgres:16`.
    #[must_use]
    pub fn new() -> Self {
        let image = std::env::var(IMAGE_ENV)
            .ok()
            .and_then(|image| {
                image
                    .split_once(':')
                    .map(|(name, tag)| (name.to_owned(), tag.to_owned()))
            })
            .unwrap_or((DEFAULT_IMAGE.0.to_owned(), DEFAULT_IMAGE.1.to_owned()));
        Self {
            image,
            with_tls: OnceCell::new(),
            without_tls: OnceCell::new(),
            watchdogs: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
        }
    }

    async fn start(&self, tls: bool) -> Result<Arc<Server>, Error> {
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(Error::ShutDown(NAME));
        }
        tokio::task::spawn_blocking(docker_daemon)
            .await
            .map_err(Error::Task)??;
        let password = Secret::generate();
        let mut request = GenericImage::new(self.image.0.clone(), self.image.1.clone())
            .with_exposed_port(5432.tcp())
            .with_wait_for(WaitFor::message_on_stderr(
                "database system is ready to accept connections",
            ))
            .with_env_var("POSTGRES_PASSWORD", password.expose())
            .with_startup_timeout(START_TIMEOUT);
        if tls {
            request = request.with_cmd([
                "postgres",
                "-c",
                "ssl=on",
                "-c",
                "ssl_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem",
                "-c",
                "ssl_key_file=/etc/ssl/private/ssl-cert-snakeoil.key",
            ]);
        }
        let container = request.start().await.map_err(|source| Error::Container {
            action: "start",
            source,
        })?;
        if let Ok(watchdog) =
            Watchdog::spawn("docker rm -f -v \"$1\" >/dev/null 2>&1", [container.id()])
        {
            self.watchdogs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(watchdog);
        }
        let port = container
            .get_host_port_ipv4(5432)
            .await
            .map_err(|source| Error::Container {
                action: "find the port of",
                source,
            })?;
        let host = container
            .get_host()
            .await
            .map_err(|source| Error::Container {
                action: "find the host of",
                source,
            })?
            .to_string();
        let admin = ConnectSpec {
            route: Route::Tcp {
                host: host.clone(),
                port,
            },
            user: "postgres".to_owned(),
            password: Some(password),
            database: "postgres".to_owned(),
            sslmode: SslMode::Prefer,
        };
        await_login(&admin).await?;
        let (version, offers_tls) = super::url::inspect(&admin).await?;
        let server = Arc::new(Server::new(ServerParts {
            provider: NAME,
            host,
            port,
            admin,
            tls: offers_tls,
            // Clients reach the container through docker's port mapping, so addresses vary;
            // the administrator keeps its password login from anywhere.
            hba: Some((
                HbaWriter::Copy,
                vec![
                    "local all all trust".to_owned(),
                    "host all \"postgres\" all scram-sha-256".to_owned(),
                ],
            )),
            data_dir: None,
            pid: None,
            version,
            keep_alive: Some(Box::new(container)),
            spares: 4,
        }));
        server.refill_spares();
        Ok(server)
    }
}

/// Waits until the administrator can log in (the image's entrypoint restarts the server once
/// after initialising it).
async fn await_login(admin: &ConnectSpec) -> Result<(), Error> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match Session::connect(admin).await {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                return Err(super::server::admin_err("log in to the container")(error));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Whether a docker daemon answers (see [`crate::docker::daemon`]).
///
/// # Errors
/// [`Unavailable`] with what was tried.
pub fn docker_daemon() -> Result<(), Unavailable> {
    // testcontainers reads DOCKER_HOST only, not Docker contexts: check what it will use.
    crate::docker::daemon_from_env().map_err(|e| Unavailable {
        provider: NAME,
        reason: crate::backend::error_chain(&e),
        remedy: "start a docker daemon (or set DOCKER_HOST), or use RELAPSE_POSTGRES=local"
            .to_owned(),
    })
}

impl Provider for ContainerProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check_available(&self) -> Result<(), Unavailable> {
        docker_daemon()
    }

    fn server(&self, tls: bool) -> BoxFuture<'_, Result<Arc<Server>, Error>> {
        Box::pin(super::provider::lazy_server(
            NAME,
            [&self.with_tls, &self.without_tls],
            &self.shut_down,
            tls,
            move || self.start(tls),
        ))
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), Error>> {
        self.shut_down.store(true, Ordering::SeqCst);
        let watchdogs: Vec<Watchdog> = self
            .watchdogs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        Box::pin(async move {
            for watchdog in watchdogs {
                watchdog.release(Duration::from_secs(30));
            }
            Ok(())
        })
    }
}
