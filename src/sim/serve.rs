//! Transports of the simulated API server: in-process as a `tower::Service` for `kube::Client`,
//! and HTTPS on `127.0.0.1:<random port>` with a throwaway CA and a bearer token for kubectl.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rand::Rng;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
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
        options.mode(0o600);
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

/// Serves `api` over HTTPS on 127.0.0.1 with a random port, CA and bearer token.
///
/// # Errors
/// Fails when certificates cannot be generated or no port can be bound.
pub async fn serve_tls(api: ApiServer) -> Result<TlsEndpoint, ServeError> {
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
    let (shutdown, mut stop) = watch::channel(false);
    let task_token = token.clone();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => {
                    let Ok((tcp, _)) = accepted else { continue };
                    let acceptor = acceptor.clone();
                    let api = api.clone();
                    let token = task_token.clone();
                    connections.spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let api = api.clone();
                            let ok = authorized(&req, &token);
                            async move {
                                if !ok {
                                    return Ok::<_, Infallible>(status::error(&ApiError::new(Reason::Unauthorized, "Unauthorized")));
                                }
                                Ok(api.handle(req).await)
                            }
                        });
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(TokioIo::new(tls), service)
                            .await;
                    });
                }
            }
        }
        connections.shutdown().await;
    });
    Ok(TlsEndpoint {
        url: format!("https://{addr}"),
        addr,
        ca_pem: certs.ca_pem,
        token,
        shutdown,
        task,
    })
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

    #[test]
    fn certificates_generate() {
        let certs = certificates().unwrap();
        assert!(certs.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
