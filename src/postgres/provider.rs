//! The provider trait and the choice of provider from the environment.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;

use super::{ContainerProvider, Error, LocalProvider, Server, UrlProvider};

/// Environment variable choosing the provider: `local` (default), `container` or `url`.
pub const PROVIDER_ENV: &str = "RELAPSE_POSTGRES";
/// Environment variable holding the connection URL of the `url` provider.
pub const URL_ENV: &str = "RELAPSE_POSTGRES_URL";

/// Something that supplies a PostgreSQL server to the scenarios of this process.
///
/// Providers start their server on first use and share it; scenarios isolate themselves on it
/// with a [`Tenant`](super::Tenant).
pub trait Provider: Send + Sync {
    /// The provider's name, as in [`PROVIDER_ENV`].
    fn name(&self) -> &'static str;

    /// The server, offering TLS or not, started (or found) on first use.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the provider cannot run on this machine (no binaries, no
    /// docker daemon, no URL), [`Error::Unsupported`] when it cannot serve that TLS setting,
    /// others when starting failed.
    fn server(&self, tls: bool) -> BoxFuture<'_, Result<Arc<Server>, Error>>;

    /// Another server with the same TLS setting, for a tenant whose names are held on
    /// [`Provider::server`] and on the other servers before it: the `n`-th (from 1), started
    /// on first use. `Ok(None)` when the provider has no more (the tenant then waits for its
    /// names on the first server); the default for providers with a single server.
    ///
    /// # Errors
    /// When starting the server failed.
    fn other_server(
        &self,
        tls: bool,
        n: usize,
    ) -> BoxFuture<'_, Result<Option<Arc<Server>>, Error>> {
        let _ = (tls, n);
        Box::pin(async { Ok(None) })
    }

    /// Whether the provider can serve on this machine, decided without starting anything (a
    /// trial that cannot get a server is planned as ignored with this reason). The default
    /// knows of nothing against it.
    ///
    /// # Errors
    /// [`Unavailable`](super::Unavailable) with what is missing and the remedy.
    fn check_available(&self) -> Result<(), super::Unavailable> {
        Ok(())
    }

    /// Stops whatever the provider started and removes its files. Later calls to
    /// [`Provider::server`] fail with [`Error::ShutDown`].
    ///
    /// # Errors
    /// When stopping or cleaning up failed; everything that could be stopped was.
    fn shutdown(&self) -> BoxFuture<'_, Result<(), Error>>;
}

/// The available providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Servers started from the machine's PostgreSQL binaries.
    Local,
    /// A testcontainers PostgreSQL container.
    Container,
    /// An existing server given by [`URL_ENV`].
    Url,
}

impl FromStr for ProviderKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(Self::Local),
            "container" => Ok(Self::Container),
            "url" => Ok(Self::Url),
            other => Err(Error::UnknownProvider(other.to_owned())),
        }
    }
}

impl ProviderKind {
    /// The kind the environment asks for: [`PROVIDER_ENV`] if set, else `url` when
    /// [`URL_ENV`] is set, else `local`.
    ///
    /// # Errors
    /// [`Error::UnknownProvider`] for an unknown [`PROVIDER_ENV`] value.
    pub fn from_env() -> Result<Self, Error> {
        match std::env::var(PROVIDER_ENV) {
            Ok(value) if !value.is_empty() => value.parse(),
            _ if std::env::var_os(URL_ENV).is_some() => Ok(Self::Url),
            _ => Ok(Self::Local),
        }
    }
}

/// The process-wide provider chosen by the environment (see [`ProviderKind::from_env`]),
/// created on first use.
///
/// # Errors
/// [`Error::UnknownProvider`] for an unknown [`PROVIDER_ENV`] value.
pub fn shared() -> Result<&'static dyn Provider, Error> {
    static CONTAINER: OnceLock<ContainerProvider> = OnceLock::new();
    static URL: OnceLock<UrlProvider> = OnceLock::new();
    Ok(match ProviderKind::from_env()? {
        ProviderKind::Local => LocalProvider::shared(),
        ProviderKind::Container => CONTAINER.get_or_init(ContainerProvider::new),
        ProviderKind::Url => URL.get_or_init(|| UrlProvider::from_env(URL_ENV)),
    })
}

/// The `server` of the providers that start their own servers (local, container): the server
/// for the TLS setting from its cell, started by `start` on first use, refused once the
/// provider is shut down (a start racing the shutdown must not hand out a stopped server).
///
/// # Errors
/// What `start` fails with; [`Error::ShutDown`] after [`Provider::shutdown`].
pub(super) async fn lazy_server<F, Fut>(
    name: &'static str,
    cells: [&tokio::sync::OnceCell<Arc<Server>>; 2],
    shut_down: &std::sync::atomic::AtomicBool,
    tls: bool,
    start: F,
) -> Result<Arc<Server>, Error>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Arc<Server>, Error>>,
{
    let [with_tls, without_tls] = cells;
    let cell = if tls { with_tls } else { without_tls };
    let server = cell.get_or_try_init(start).await?;
    if shut_down.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Error::ShutDown(name));
    }
    Ok(Arc::clone(server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_parse() {
        assert_eq!(
            "local".parse::<ProviderKind>().unwrap(),
            ProviderKind::Local
        );
        assert_eq!(
            "container".parse::<ProviderKind>().unwrap(),
            ProviderKind::Container
        );
        assert_eq!("url".parse::<ProviderKind>().unwrap(), ProviderKind::Url);
        let error = "docker".parse::<ProviderKind>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown postgres provider \"docker\" (expected local, container or url)"
        );
    }
}
