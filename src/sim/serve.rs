//! Transports of the simulated API server: in-process as a `tower::Service` for `kube::Client`,
//! and HTTPS on `127.0.0.1:<random port>` with a throwaway CA and a bearer token for kubectl.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response, header};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rand::Rng;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::sim::api::{ApiServer, Body, status};
use crate::sim::store::{ApiError, Reason, base64};

/// Errors of the transports.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The CA or server certificate could not be generated.
    #[error("failed to generate the TLS certificates of the simulated API server")]
    Certificate(#[source] rcgen::Error),
    /// The TLS configuration was rejected.
    #[error("failed to configure TLS for the simulated API server")]
    Tls(#[source] rustls::Error),
    /// No local port could be bound.
    #[error("failed to bind 127.0.0.1 for the simulated API server")]
    Bind(#[source] std::io::Error),
    /// The kubeconfig could not be written.
    #[error("failed to write the kubeconfig {path}")]
    Kubeconfig {
        /// Where it was to be written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig could not be rendered as YAML.
    #[error("failed to render the kubeconfig")]
    Render(#[source] crate::yaml::YamlError),
}

/// The API server as a `tower::Service`, for `kube::Client::new(service, namespace)`.
#[derive(Debug, Clone)]
pub struct SimService {
    api: ApiServer,
}

impl SimService {
    /// Wraps an API server.
    #[must_use]
    pub fn new(api: ApiServer) -> Self {
        Self { api }
    }
}

impl<B> tower::Service<Request<B>> for SimService
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let api = self.api.clone();
        Box::pin(async move { Ok(api.handle(req).await) })
    }
}

/// An HTTPS endpoint of the simulated API server. Dropping it stops the server and closes its
/// connections.
#[derive(Debug)]
pub struct TlsEndpoint {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// PEM of the CA that signed the server certificate.
    pub ca_pem: String,
    /// The bearer token clients must send.
    pub token: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TlsEndpoint {
    /// A kubeconfig for this endpoint (cluster, user and context named `relapse-sim`).
    ///
    /// # Errors
    /// Fails only if YAML rendering fails.
    pub fn kubeconfig_yaml(&self) -> Result<String, ServeError> {
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "relapse-sim", "cluster": {
                "server": self.url,
                "certificate-authority-data": base64(self.ca_pem.as_bytes()),
            }}],
            "users": [{"name": "relapse-sim", "user": {"token": self.token}}],
            "contexts": [{"name": "relapse-sim", "context": {"cluster": "relapse-sim", "user": "relapse-sim", "namespace": "default"}}],
            "current-context": "relapse-sim",
            "preferences": {},
        });
        crate::yaml::to_string(&config).map_err(ServeError::Render)
    }

    /// Writes the kubeconfig to `path` with mode 0600 (it holds the token).
    ///
    /// # Errors
    /// Fails when the file cannot be written.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), ServeError> {
        write_kubeconfig_file(path, &self.kubeconfig_yaml()?)
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

impl Drop for TlsEndpoint {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

/// Writes a kubeconfig (it carries credentials) to `path`, readable by its owner only (0600).
/// A symlink at `path` is refused rather than followed, so the credentials cannot be written
/// over a file the link points at.
///
/// # Errors
/// Fails when the file cannot be written.
pub fn write_kubeconfig_file(path: &Path, text: &str) -> Result<(), ServeError> {
    let err = |source| ServeError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = options.open(path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // An existing file keeps its mode on open: tighten it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    file.write_all(text.as_bytes()).map_err(err)
}

#[cfg(all(test, unix))]
mod kubeconfig_file_tests {
    use super::*;

    #[test]
    fn a_symlink_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        let link = dir.path().join("kubeconfig");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_kubeconfig_file(&link, "token: secret").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        let plain = dir.path().join("plain");
        write_kubeconfig_file(&plain, "token: secret").unwrap();
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "token: secret");
    }
}

struct Certs {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn certificates() -> Result<Certs, rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "relapse-sim-ca");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "relapse-sim");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    Ok(Certs {
        ca_pem: ca_cert.pem(),
        cert: leaf_cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    })
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(req: &Request<hyper::body::Incoming>, token: &str) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim().as_bytes(), token.as_bytes()))
}

/// Connection limits of the HTTPS endpoint.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// How long a client has for the TLS handshake and then for each request's headers
    /// (kube-apiserver's `ReadHeaderTimeout`, k8s.io/apiserver/pkg/server/secure_serving.go;
    /// Go's server bounds the handshake by it too).
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight stays open (kube-apiserver's
    /// `IdleTimeout`, secure_serving.go). A kept-alive HTTP/1.1 connection is also closed
    /// when its next request's headers do not arrive within `header_read_timeout`.
    pub idle_timeout: Duration,
    /// The most connections served at once. At the cap the longest-idle connection is
    /// closed to make room; when every connection has a request in flight, new ones wait in
    /// the listen backlog.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(32),
            idle_timeout: Duration::from_secs(90),
            max_connections: default_max_connections(),
        }
    }
}

/// Three quarters of the descriptors the process may open (a connection costs one), leaving
/// room for everything else the process opens; between 16 and 4096.
fn default_max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given and has no other effect.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    (soft / 4 * 3).saturating_sub(32).clamp(16, 4096)
}

/// The activity of one connection, for the idle timeout and for eviction at the cap.
#[derive(Debug)]
struct ConnState {
    /// Requests whose response (body included) is not finished.
    in_flight: AtomicUsize,
    /// Milliseconds since the registry's epoch when the connection was last active.
    last_active: AtomicU64,
    /// Asks the connection to close.
    close: Notify,
}

/// The open connections.
#[derive(Debug)]
struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    conns: std::sync::Mutex<HashMap<u64, Arc<ConnState>>>,
    /// Signalled whenever a connection ends.
    ended: Notify,
}

impl Registry {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            conns: std::sync::Mutex::new(HashMap::new()),
            ended: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn register(self: &Arc<Self>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(self.now_ms()),
            close: Notify::new(),
        });
        self.lock().insert(id, state.clone());
        Registration {
            registry: self.clone(),
            id,
            state,
        }
    }

    /// Asks the longest-idle connection to close; false when every connection is busy.
    fn evict_idle(&self) -> bool {
        let victim = self
            .lock()
            .values()
            .filter(|c| c.in_flight.load(Ordering::SeqCst) == 0)
            .min_by_key(|c| c.last_active.load(Ordering::SeqCst))
            .cloned();
        victim.is_some_and(|c| {
            c.close.notify_one();
            true
        })
    }
}

/// One connection's entry; dropping it removes the entry.
struct Registration {
    registry: Arc<Registry>,
    id: u64,
    state: Arc<ConnState>,
}

impl Registration {
    /// How long the connection has been idle, or `None` while a request is in flight.
    fn idle_for(&self) -> Option<Duration> {
        if self.state.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = self.state.last_active.load(Ordering::SeqCst);
        Some(Duration::from_millis(
            self.registry.now_ms().saturating_sub(last),
        ))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        self.registry.ended.notify_waiters();
    }
}

/// Marks a request in flight until its response body is finished or dropped.
struct InFlight {
    registry: Arc<Registry>,
    state: Arc<ConnState>,
}

impl InFlight {
    fn start(registry: &Arc<Registry>, state: &Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        state.last_active.store(registry.now_ms(), Ordering::SeqCst);
        Self {
            registry: registry.clone(),
            state: state.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state
            .last_active
            .store(self.registry.now_ms(), Ordering::SeqCst);
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request in flight while it streams (a watch is not idle).
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves `api` over HTTPS on 127.0.0.1 with a random port, CA and bearer token, with the
/// default [`ServeLimits`].
///
/// # Errors
/// Fails when certificates cannot be generated or no port can be bound.
pub async fn serve_tls(api: ApiServer) -> Result<TlsEndpoint, ServeError> {
    serve_tls_with(api, ServeLimits::default()).await
}

/// Serves `api` over HTTPS on 127.0.0.1 with a random port, CA and bearer token.
///
/// # Errors
/// Fails when certificates cannot be generated or no port can be bound.
pub async fn serve_tls_with(
    api: ApiServer,
    limits: ServeLimits,
) -> Result<TlsEndpoint, ServeError> {
    let certs = certificates().map_err(ServeError::Certificate)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ServeError::Tls)?
        .with_no_client_auth()
        .with_single_cert(vec![certs.cert], certs.key)
        .map_err(ServeError::Tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(ServeError::Bind)?;
    let addr = listener.local_addr().map_err(ServeError::Bind)?;
    let token = random_token();
    let (shutdown, stop) = watch::channel(false);
    let server = Server {
        api,
        acceptor,
        token: token.clone(),
        limits: Arc::new(limits),
        registry: Arc::new(Registry::new()),
    };
    let task = tokio::spawn(server.run(listener, stop));
    Ok(TlsEndpoint {
        url: format!("https://{addr}"),
        addr,
        ca_pem: certs.ca_pem,
        token,
        shutdown,
        task,
    })
}

/// The first and the longest pause after a failed accept.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

struct Server {
    api: ApiServer,
    acceptor: TlsAcceptor,
    token: String,
    limits: Arc<ServeLimits>,
    registry: Arc<Registry>,
}

impl Server {
    async fn run(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let mut connections = JoinSet::new();
        let mut backoff = ACCEPT_BACKOFF.0;
        loop {
            while connections.try_join_next().is_some() {}
            if self.registry.len() >= self.limits.max_connections {
                // Make room: close the longest-idle connection, or wait for one to end.
                let ended = self.registry.ended.notified();
                self.registry.evict_idle();
                tokio::select! {
                    _ = stop.changed() => break,
                    () = ended => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            }
            tokio::select! {
                _ = stop.changed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        backoff = ACCEPT_BACKOFF.0;
                        let registration = self.registry.register();
                        connections.spawn(self.connection(tcp, registration));
                    }
                    Err(error) => {
                        // Out of descriptors (EMFILE, ENFILE) or a connection reset before it
                        // was accepted: back off instead of spinning, and free a descriptor.
                        tracing::warn!(%error, "sim api: accept failed; backing off");
                        self.registry.evict_idle();
                        tokio::select! {
                            _ = stop.changed() => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                    }
                },
            }
        }
        connections.shutdown().await;
    }

    fn connection(
        &self,
        tcp: tokio::net::TcpStream,
        registration: Registration,
    ) -> impl Future<Output = ()> + Send + 'static {
        let acceptor = self.acceptor.clone();
        let api = self.api.clone();
        let token = self.token.clone();
        let limits = self.limits.clone();
        let registry = self.registry.clone();
        async move {
            let state = registration.state.clone();
            let handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp));
            let tls = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(tls)) => tls,
                    _ => return,
                },
                () = state.close.notified() => return,
            };
            let service_state = state.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let in_flight = InFlight::start(&registry, &service_state);
                let api = api.clone();
                let ok = authorized(&req, &token);
                async move {
                    let resp = if ok {
                        api.handle(req).await
                    } else {
                        status::error(&ApiError::new(Reason::Unauthorized, "Unauthorized"))
                    };
                    Ok::<_, Infallible>(resp.map(|body| Tracked {
                        body,
                        _in_flight: in_flight,
                    }))
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            builder.http2().timer(TokioTimer::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::pin!(conn);
            loop {
                let wait = registration.idle_for().map_or(limits.idle_timeout, |idle| {
                    limits.idle_timeout.saturating_sub(idle)
                });
                tokio::select! {
                    _ = conn.as_mut() => return,
                    () = state.close.notified() => break,
                    () = tokio::time::sleep(wait) => {
                        if registration.idle_for().is_some_and(|idle| idle >= limits.idle_timeout) {
                            break;
                        }
                    }
                }
            }
            conn.as_mut().graceful_shutdown();
            // A client that does not finish its part of the shutdown is cut off.
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert_eq!(random_token().len(), 64);
    }

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::sim::SimCluster;

    fn short_limits(max_connections: usize) -> ServeLimits {
        ServeLimits {
            header_read_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_millis(800),
            max_connections,
        }
    }

    async fn tls_connect(
        endpoint: &TlsEndpoint,
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        try_tls_connect(endpoint).await.unwrap()
    }

    async fn try_tls_connect(
        endpoint: &TlsEndpoint,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(endpoint.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(endpoint.addr).await?;
        connector
            .connect("127.0.0.1".try_into().unwrap(), tcp)
            .await
    }

    fn request(endpoint: &TlsEndpoint, path: &str, close: bool) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n{}\r\n",
            endpoint.token,
            if close { "Connection: close\r\n" } else { "" }
        )
    }

    /// `GET /version` on fresh connections until one answers; the status line.
    async fn version_retrying(endpoint: &TlsEndpoint) -> String {
        loop {
            if let Ok(mut tls) = try_tls_connect(endpoint).await {
                let sent = tls
                    .write_all(request(endpoint, "/version", true).as_bytes())
                    .await;
                let mut out = Vec::new();
                let _ = tls.read_to_end(&mut out).await;
                let status = String::from_utf8_lossy(&out)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if sent.is_ok() && !status.is_empty() {
                    return status;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /version` on a fresh connection; the status line.
    async fn version(endpoint: &TlsEndpoint) -> String {
        let mut tls = tls_connect(endpoint).await;
        tls.write_all(request(endpoint, "/version", true).as_bytes())
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Reads until the peer closes; how long that took.
    async fn closed_after<R: tokio::io::AsyncRead + Unpin>(mut stream: R) -> Duration {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        let wait = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        });
        wait.await.expect("the server never closed the connection");
        start.elapsed()
    }

    #[tokio::test]
    async fn silent_and_idle_connections_are_closed() {
        let cluster = SimCluster::start();
        let endpoint = serve_tls_with(cluster.api().clone(), short_limits(64))
            .await
            .unwrap();
        // No handshake at all, and half a ClientHello.
        let silent = tokio::net::TcpStream::connect(endpoint.addr).await.unwrap();
        let mut partial = tokio::net::TcpStream::connect(endpoint.addr).await.unwrap();
        partial
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .unwrap();
        assert!(closed_after(silent).await >= Duration::from_millis(400));
        closed_after(partial).await;
        // Half a request's headers after the handshake.
        let mut slow = tls_connect(&endpoint).await;
        slow.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        closed_after(slow).await;
        // A kept-alive connection is closed once idle.
        let mut kept = tls_connect(&endpoint).await;
        kept.write_all(request(&endpoint, "/version", false).as_bytes())
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = kept.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        // Closed by whichever comes first: the idle timeout, or hyper's header read timeout,
        // which runs while a kept-alive HTTP/1.1 connection waits for its next request.
        let idle = closed_after(kept).await;
        assert!(idle >= Duration::from_millis(400), "{idle:?}");
        assert_eq!(version(&endpoint).await, "HTTP/1.1 200 OK");
    }

    #[tokio::test]
    async fn a_watch_is_not_idle() {
        let cluster = SimCluster::start();
        let endpoint = serve_tls_with(cluster.api().clone(), short_limits(64))
            .await
            .unwrap();
        let mut watch = tls_connect(&endpoint).await;
        let rv = cluster.store().resource_version();
        watch
            .write_all(
                request(
                    &endpoint,
                    &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"),
                    false,
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut buf = vec![0u8; 8192];
        let n = watch.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let cm = crate::sim::store::Store::resource_for_kind(cluster.store(), "v1", "ConfigMap")
            .unwrap();
        cluster
            .store()
            .create(
                &cm,
                Some("default"),
                serde_json::json!({"metadata": {"name": "late"}}),
                &Default::default(),
            )
            .unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), watch.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).contains("\"late\""),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }

    #[tokio::test]
    async fn at_the_connection_cap_idle_connections_make_room() {
        let cluster = SimCluster::start();
        let endpoint = serve_tls_with(
            cluster.api().clone(),
            ServeLimits {
                header_read_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(30),
                max_connections: 4,
            },
        )
        .await
        .unwrap();
        let mut held = Vec::new();
        for _ in 0..20 {
            held.push(tokio::net::TcpStream::connect(endpoint.addr).await.unwrap());
        }
        // A client at the cap may see its connection closed to make room for another, as
        // clients of a loaded kube-apiserver do; it retries (`version_retrying`), and gets an
        // answer.
        for _ in 0..3 {
            let status = tokio::time::timeout(Duration::from_secs(10), version_retrying(&endpoint))
                .await
                .expect("/version did not answer at the connection cap");
            assert_eq!(status, "HTTP/1.1 200 OK");
        }
        assert!(endpoint_connections(&endpoint) <= 4);
        drop(held);
    }

    fn endpoint_connections(endpoint: &TlsEndpoint) -> usize {
        // The server's side of the sockets: established TCP connections to its port.
        let port = format!(":{:04X} ", endpoint.addr.port());
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3
                    && format!("{} ", &cols[1][cols[1].len() - 5..]) == port
                    && cols[3] == "01"
            })
            .count()
    }

    #[test]
    fn certificates_generate() {
        let certs = certificates().unwrap();
        assert!(certs.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
