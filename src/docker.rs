//! The Docker daemon: whether one answers, which one, and removing leftovers by name.
//!
//! The k3d backend and the container Postgres provider both need a daemon, and both report its
//! absence as a reason to skip, never as a failure.
//!
//! **Which daemon.** k3d reaches Docker through the Docker CLI library
//! (`pkg/runtimes/docker/util.go` `GetDockerClient` in k3d v5.8.3, which calls
//! `command.NewDockerCli` and `Initialize` without `--host` or `--context`), so it talks to the
//! daemon the `docker` command would use. [`resolve_host`] follows the same order as the Docker
//! CLI (`cli/command/cli.go` `resolveContextName` in docker/cli v27.0.3, the version k3d v5.8.3
//! builds with): `DOCKER_HOST`; else the context named by `DOCKER_CONTEXT`; else `currentContext`
//! in `config.json` of the configuration directory (`DOCKER_CONFIG`, default `~/.docker`); a
//! context other than `default` is read from `contexts/meta/<sha256 of its name>/meta.json`
//! (`cli/context/store/store.go` `contextdirOf`), whose `Endpoints.docker.Host` is the address.
//! Without any of these the default socket is used.
//!
//! **The check** asks the daemon's `/_ping` endpoint (Docker Engine API, `GET /_ping` answers
//! `200 OK`) over a `unix://` or `tcp://` address within two seconds; a socket that accepts
//! connections but does not answer is not a daemon.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable the Docker CLI and k3d read the daemon's address from.
pub const DOCKER_HOST_ENV: &str = "DOCKER_HOST";
/// The environment variable naming the Docker context to use when `DOCKER_HOST` is unset.
pub const DOCKER_CONTEXT_ENV: &str = "DOCKER_CONTEXT";
/// The environment variable naming the Docker CLI's configuration directory (default `~/.docker`).
pub const DOCKER_CONFIG_ENV: &str = "DOCKER_CONFIG";
/// The daemon's address when nothing names another.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// The context that stands for "`DOCKER_HOST` or the default socket" (`DefaultContextName`).
const DEFAULT_CONTEXT: &str = "default";
/// How long connecting and each read or write may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The most of an answer that is read (status line, headers and an error message).
const MAX_ANSWER: usize = 64 * 1024;

/// Why no Docker daemon answered, or a request to it failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// Nothing accepted a connection at the address.
    #[error("no docker daemon at {address}")]
    Connect {
        /// The socket path or `host:port`.
        address: String,
        /// The connection error.
        #[source]
        source: std::io::Error,
    },
    /// A `tcp://` address that does not resolve.
    #[error("cannot resolve DOCKER_HOST {0}")]
    Resolve(String),
    /// A scheme other than `unix://` and `tcp://` (`ssh://` needs the docker CLI).
    #[error("unsupported DOCKER_HOST {0}")]
    UnsupportedHost(String),
    /// Something answered, but not with the expected status.
    #[error(
        "the docker daemon at {host} answered {status:?}{}",
        message_suffix(message)
    )]
    BadAnswer {
        /// The address.
        host: String,
        /// The first line of the answer.
        status: String,
        /// The daemon's error message (`{"message": ...}`), if it sent one.
        message: Option<String>,
    },
    /// The connection was accepted but the request got no answer in time.
    #[error("the docker daemon at {host} did not answer")]
    NoAnswer {
        /// The address.
        host: String,
        /// The read or write error.
        #[source]
        source: std::io::Error,
    },
    /// The daemon was chosen through a Docker context; the cause says what failed there.
    #[error("docker context `{context}` (from {origin})")]
    InContext {
        /// The context's name.
        context: String,
        /// Where the name came from: `DOCKER_CONTEXT` or the `config.json` path.
        origin: String,
        /// What failed with the context's daemon.
        #[source]
        source: Box<DockerError>,
    },
    /// The current context has no metadata file, as the Docker CLI would also complain.
    #[error("docker context `{context}` (from {origin}) does not exist: no {}", path.display())]
    ContextNotFound {
        /// The context's name.
        context: String,
        /// Where the name came from.
        origin: String,
        /// The metadata file looked for.
        path: PathBuf,
    },
    /// A Docker CLI configuration file that cannot be read or parsed.
    #[error("cannot read the docker configuration {}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn message_suffix(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

/// The daemon the Docker CLI (and so k3d) would use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerHost {
    /// The address, `unix:///path` or `tcp://host:port`.
    pub url: String,
    /// The context it was chosen through (`None`: `DOCKER_HOST` or the default socket).
    pub context: Option<ContextChoice>,
}

/// A Docker context that chose the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextChoice {
    /// The context's name.
    pub name: String,
    /// Where the name came from: `DOCKER_CONTEXT`, or the `config.json` path.
    pub origin: String,
}

impl DockerHost {
    /// `host` chosen without a context.
    #[must_use]
    pub fn plain(host: impl Into<String>) -> Self {
        Self {
            url: host.into(),
            context: None,
        }
    }

    fn in_context(&self, error: DockerError) -> DockerError {
        match &self.context {
            None => error,
            Some(choice) => DockerError::InContext {
                context: choice.name.clone(),
                origin: choice.origin.clone(),
                source: Box::new(error),
            },
        }
    }
}

impl std::fmt::Display for DockerHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.context {
            None => f.write_str(&self.url),
            Some(choice) => write!(f, "{} (docker context `{}`)", self.url, choice.name),
        }
    }
}

/// Checks that the daemon the Docker CLI and k3d would use ([`resolve_host`]) answers a ping.
///
/// # Errors
/// [`DockerError`] saying what was tried and what happened; through a context, wrapped in
/// [`DockerError::InContext`].
pub fn daemon() -> Result<(), DockerError> {
    let host = resolve_host()?;
    ping(&host.url).map_err(|e| host.in_context(e))
}

/// Checks that the daemon at `DOCKER_HOST` (default [`DEFAULT_HOST`]) answers a ping, ignoring
/// Docker contexts: the address libraries that do not read the Docker CLI's configuration use.
///
/// # Errors
/// [`DockerError`] saying what was tried and what happened.
pub fn daemon_from_env() -> Result<(), DockerError> {
    let host = std::env::var(DOCKER_HOST_ENV)
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_owned());
    ping(&host)
}

/// The daemon the Docker CLI would use in this process's environment (see the module docs).
///
/// # Errors
/// [`DockerError::ContextNotFound`] or [`DockerError::Config`] when the configuration names a
/// context that cannot be read.
pub fn resolve_host() -> Result<DockerHost, DockerError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    resolve_host_with(|name| std::env::var(name).ok(), home.as_deref())
}

/// [`resolve_host`] with the environment read through `env` and `home` as the home directory.
///
/// # Errors
/// See [`resolve_host`].
pub fn resolve_host_with(
    env: impl Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<DockerHost, DockerError> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(host) = env(DOCKER_HOST_ENV) {
        return Ok(DockerHost::plain(host));
    }
    let config_dir = match env(DOCKER_CONFIG_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => match home {
            Some(home) => home.join(".docker"),
            None => return Ok(DockerHost::plain(DEFAULT_HOST)),
        },
    };
    let choice = match env(DOCKER_CONTEXT_ENV) {
        Some(name) => ContextChoice {
            name,
            origin: DOCKER_CONTEXT_ENV.to_owned(),
        },
        None => {
            let path = config_dir.join("config.json");
            match current_context(&path)? {
                Some(name) => ContextChoice {
                    name,
                    origin: path.display().to_string(),
                },
                None => return Ok(DockerHost::plain(DEFAULT_HOST)),
            }
        }
    };
    if choice.name == DEFAULT_CONTEXT {
        return Ok(DockerHost::plain(DEFAULT_HOST));
    }
    let meta = config_dir
        .join("contexts")
        .join("meta")
        .join(sha256_hex(choice.name.as_bytes()))
        .join("meta.json");
    let text = match std::fs::read_to_string(&meta) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DockerError::ContextNotFound {
                context: choice.name,
                origin: choice.origin,
                path: meta,
            });
        }
        Err(e) => {
            return Err(DockerError::Config {
                path: meta,
                source: Box::new(e),
            });
        }
    };
    let parsed: ContextMeta = serde_json::from_str(&text).map_err(|e| DockerError::Config {
        path: meta.clone(),
        source: Box::new(e),
    })?;
    // An endpoint without a host means the default one (docker/cli `opts.ParseHost("")`).
    let url = parsed
        .endpoints
        .docker
        .and_then(|d| d.host)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_owned());
    Ok(DockerHost {
        url,
        context: Some(choice),
    })
}

/// `currentContext` of the Docker CLI's `config.json`; `None` when the file or the key is absent.
fn current_context(path: &Path) -> Result<Option<String>, DockerError> {
    #[derive(serde::Deserialize)]
    struct ConfigFile {
        #[serde(default, rename = "currentContext")]
        current_context: Option<String>,
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(DockerError::Config {
                path: path.to_owned(),
                source: Box::new(e),
            });
        }
    };
    let config: ConfigFile = serde_json::from_str(&text).map_err(|e| DockerError::Config {
        path: path.to_owned(),
        source: Box::new(e),
    })?;
    Ok(config.current_context.filter(|c| !c.is_empty()))
}

/// The part of a context's `meta.json` read here (`cli/context/store/metadatastore.go`).
#[derive(serde::Deserialize)]
struct ContextMeta {
    #[serde(default, rename = "Endpoints")]
    endpoints: ContextEndpoints,
}

#[derive(serde::Deserialize, Default)]
struct ContextEndpoints {
    #[serde(default)]
    docker: Option<ContextEndpoint>,
}

#[derive(serde::Deserialize)]
struct ContextEndpoint {
    #[serde(default, rename = "Host")]
    host: Option<String>,
}

/// The hex SHA-256 of `data`, as the Docker CLI names a context's directory
/// (`digest.FromString(name).Encoded()`).
fn sha256_hex(data: &[u8]) -> String {
    // rustls's ring provider is already linked for TLS; this suite hashes with SHA-256.
    let hash = match rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256 {
        rustls::SupportedCipherSuite::Tls12(suite) => suite.common.hash_provider,
        rustls::SupportedCipherSuite::Tls13(suite) => suite.common.hash_provider,
    };
    let digest = hash.hash(data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that the Docker daemon at `host` (`unix:///path` or `tcp://host:port`) answers a ping.
///
/// # Errors
/// [`DockerError`] saying what was tried and what happened.
pub fn ping(host: &str) -> Result<(), DockerError> {
    let answer = request(host, "GET", "/_ping")?;
    if answer.status == 200 {
        Ok(())
    } else {
        Err(answer.into_error(host))
    }
}

/// What removing a named object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// It existed and is gone.
    Removed,
    /// There was nothing by that name.
    Absent,
}

/// Removes the network `name` (`DELETE /networks/{id}`, which takes a name too).
///
/// # Errors
/// [`DockerError`] when the daemon cannot be reached or refuses (e.g. containers still use it).
pub fn remove_network(host: &str, name: &str) -> Result<Removed, DockerError> {
    remove(host, &format!("/networks/{}", path_segment(name)))
}

/// Removes the volume `name` (`DELETE /volumes/{name}`).
///
/// # Errors
/// [`DockerError`] when the daemon cannot be reached or refuses (`409`: a container uses it).
pub fn remove_volume(host: &str, name: &str) -> Result<Removed, DockerError> {
    remove(host, &format!("/volumes/{}", path_segment(name)))
}

fn remove(host: &str, path: &str) -> Result<Removed, DockerError> {
    let answer = request(host, "DELETE", path)?;
    match answer.status {
        // Docker Engine API: 204 No Content on success, 404 when there is no such object.
        200 | 204 => Ok(Removed::Removed),
        404 => Ok(Removed::Absent),
        _ => Err(answer.into_error(host)),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A daemon's answer: its status code and line, and its body.
struct Answer {
    status: u16,
    status_line: String,
    body: String,
}

impl Answer {
    fn into_error(self, host: &str) -> DockerError {
        #[derive(serde::Deserialize)]
        struct Message {
            message: String,
        }
        DockerError::BadAnswer {
            host: host.to_owned(),
            status: self.status_line,
            message: serde_json::from_str::<Message>(self.body.trim())
                .ok()
                .map(|m| m.message),
        }
    }
}

/// Sends one HTTP/1.0 request without a body to the daemon at `host` and reads the answer.
fn request(host: &str, method: &str, path: &str) -> Result<Answer, DockerError> {
    let request = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
    let raw = if let Some(path) = host.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(|source| {
            DockerError::Connect {
                address: path.display().to_string(),
                source,
            }
        })?;
        stream.set_read_timeout(Some(TIMEOUT)).ok();
        stream.set_write_timeout(Some(TIMEOUT)).ok();
        exchange(&mut stream, request.as_bytes())
    } else if let Some(address) = host.strip_prefix("tcp://") {
        let address = address.trim_end_matches('/');
        let socket = std::net::ToSocketAddrs::to_socket_addrs(address)
            .ok()
            .and_then(|mut addresses| addresses.next())
            .ok_or_else(|| DockerError::Resolve(address.to_owned()))?;
        let mut stream =
            std::net::TcpStream::connect_timeout(&socket, TIMEOUT).map_err(|source| {
                DockerError::Connect {
                    address: address.to_owned(),
                    source,
                }
            })?;
        stream.set_read_timeout(Some(TIMEOUT)).ok();
        stream.set_write_timeout(Some(TIMEOUT)).ok();
        exchange(&mut stream, request.as_bytes())
    } else {
        return Err(DockerError::UnsupportedHost(host.to_owned()));
    };
    let text = raw.map_err(|source| DockerError::NoAnswer {
        host: host.to_owned(),
        source,
    })?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or("").to_owned();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok(Answer {
        status,
        status_line,
        body: body.to_owned(),
    })
}

/// Writes `request` and reads the answer until the server closes (HTTP/1.0), within bounds.
fn exchange(stream: &mut (impl Read + Write), request: &[u8]) -> std::io::Result<String> {
    stream.write_all(request)?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while answer.len() < MAX_ANSWER {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
            // A server that sent a full status line and then stalls has answered enough.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) && answer.windows(2).any(|w| w == b"\r\n") =>
            {
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Serves connections on a Unix socket, answering each with `answer` and recording the
    /// request lines.
    fn serve(
        answers: Vec<&'static [u8]>,
    ) -> (
        tempfile::TempDir,
        String,
        Arc<Mutex<Vec<String>>>,
        std::thread::JoinHandle<()>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let server = std::thread::spawn(move || {
            for answer in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = [0u8; 256];
                let n = stream.read(&mut request).unwrap();
                let text = String::from_utf8_lossy(&request[..n]).into_owned();
                log.lock()
                    .unwrap()
                    .push(text.lines().next().unwrap_or("").to_owned());
                stream.write_all(answer).unwrap();
            }
        });
        (dir, format!("unix://{}", path.display()), seen, server)
    }

    #[test]
    fn a_missing_daemon_names_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let host = format!("unix://{}/docker.sock", dir.path().display());
        let error = ping(&host).unwrap_err();
        assert!(matches!(error, DockerError::Connect { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("no docker daemon at {}/docker.sock", dir.path().display())
        );
    }

    #[test]
    fn a_daemon_answering_ping_is_available() {
        let (_dir, host, seen, server) = serve(vec![b"HTTP/1.1 200 OK\r\n\r\nOK"]);
        ping(&host).unwrap();
        server.join().unwrap();
        assert_eq!(*seen.lock().unwrap(), ["GET /_ping HTTP/1.0"]);
    }

    #[test]
    fn another_answer_is_not_a_daemon() {
        let (_dir, host, _, server) = serve(vec![b"HTTP/1.1 404 Not Found\r\n\r\n"]);
        let error = ping(&host).unwrap_err();
        server.join().unwrap();
        assert_eq!(
            error.to_string(),
            format!("the docker daemon at {host} answered \"HTTP/1.1 404 Not Found\"")
        );
    }

    #[test]
    fn a_tcp_daemon_is_pinged_too() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 256];
            let _ = stream.read(&mut request).unwrap();
            stream.write_all(b"HTTP/1.1 200 OK\r\n\r\nOK").unwrap();
        });
        ping(&format!("tcp://{address}")).unwrap();
        server.join().unwrap();
    }

    #[test]
    fn unknown_schemes_are_unsupported() {
        let error = ping("ssh://somewhere").unwrap_err();
        assert_eq!(error.to_string(), "unsupported DOCKER_HOST ssh://somewhere");
    }

    #[test]
    fn removing_by_name_tells_removed_from_absent_and_reports_refusals() {
        let (_dir, host, seen, server) = serve(vec![
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"message\":\"volume k3d-x-images not found\"}\n",
            b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n\r\n{\"message\":\"remove k3d-x-images: volume is in use - [4f2a]\"}\n",
        ]);
        assert_eq!(remove_network(&host, "k3d-x").unwrap(), Removed::Removed);
        assert_eq!(
            remove_volume(&host, "k3d-x-images").unwrap(),
            Removed::Absent
        );
        let error = remove_volume(&host, "k3d-x-images").unwrap_err();
        server.join().unwrap();
        assert_eq!(
            error.to_string(),
            format!(
                "the docker daemon at {host} answered \"HTTP/1.1 409 Conflict\": remove k3d-x-images: volume is in use - [4f2a]"
            )
        );
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "DELETE /networks/k3d-x HTTP/1.0",
                "DELETE /volumes/k3d-x-images HTTP/1.0",
                "DELETE /volumes/k3d-x-images HTTP/1.0",
            ]
        );
    }

    #[test]
    fn names_are_percent_encoded_in_paths() {
        assert_eq!(path_segment("k3d-a_b.c~d"), "k3d-a_b.c~d");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn context_directories_are_named_by_sha256() {
        // Known answers: SHA-256 of "" and of "default".
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"default"),
            "37a8eec1ce19687d132fe29051dca629d164e2c4958ba141d5f4133a33f0688f"
        );
    }

    /// A Docker CLI configuration directory with `config.json` and one context per entry.
    fn config_dir(current: Option<&str>, contexts: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(current) = current {
            std::fs::write(
                dir.path().join("config.json"),
                format!("{{\n\t\"auths\": {{}},\n\t\"currentContext\": \"{current}\"\n}}\n"),
            )
            .unwrap();
        }
        for (name, host) in contexts {
            let meta = dir
                .path()
                .join("contexts/meta")
                .join(sha256_hex(name.as_bytes()));
            std::fs::create_dir_all(&meta).unwrap();
            // The shape `docker context create` writes.
            std::fs::write(
                meta.join("meta.json"),
                format!(
                    r#"{{"Name":"{name}","Metadata":{{"Description":""}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
                ),
            )
            .unwrap();
        }
        dir
    }

    fn resolve(vars: &[(&str, &str)], home: Option<&Path>) -> Result<DockerHost, DockerError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve_host_with(|name| vars.get(name).cloned(), home)
    }

    #[test]
    fn docker_host_wins_over_every_context() {
        let dir = config_dir(Some("colima"), &[("colima", "unix:///c.sock")]);
        let config = dir.path().display().to_string();
        let host = resolve(
            &[
                ("DOCKER_HOST", "tcp://10.0.0.2:2375"),
                ("DOCKER_CONTEXT", "colima"),
                ("DOCKER_CONFIG", &config),
            ],
            None,
        )
        .unwrap();
        assert_eq!(host, DockerHost::plain("tcp://10.0.0.2:2375"));
    }

    #[test]
    fn the_current_context_of_config_json_names_the_daemon() {
        let home = tempfile::tempdir().unwrap();
        let docker = config_dir(
            Some("desktop-linux"),
            &[
                (
                    "desktop-linux",
                    "unix:///home/u/.docker/desktop/docker.sock",
                ),
                ("colima", "unix:///home/u/.colima/default/docker.sock"),
            ],
        );
        std::fs::rename(docker.path(), home.path().join(".docker")).unwrap();
        let host = resolve(&[], Some(home.path())).unwrap();
        assert_eq!(host.url, "unix:///home/u/.docker/desktop/docker.sock");
        let choice = host.context.clone().unwrap();
        assert_eq!(choice.name, "desktop-linux");
        assert_eq!(
            choice.origin,
            home.path()
                .join(".docker/config.json")
                .display()
                .to_string()
        );
        assert_eq!(
            host.to_string(),
            "unix:///home/u/.docker/desktop/docker.sock (docker context `desktop-linux`)"
        );
        // DOCKER_CONTEXT overrides config.json.
        let host = resolve(&[("DOCKER_CONTEXT", "colima")], Some(home.path())).unwrap();
        assert_eq!(host.url, "unix:///home/u/.colima/default/docker.sock");
        assert_eq!(host.context.unwrap().origin, "DOCKER_CONTEXT");
    }

    #[test]
    fn docker_config_moves_the_configuration_directory() {
        let dir = config_dir(Some("remote"), &[("remote", "tcp://build:2376")]);
        let config = dir.path().display().to_string();
        let host = resolve(&[("DOCKER_CONFIG", &config)], None).unwrap();
        assert_eq!(host.url, "tcp://build:2376");
    }

    #[test]
    fn without_configuration_or_with_the_default_context_the_default_socket_is_used() {
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve(&[], Some(empty.path())).unwrap(),
            DockerHost::plain(DEFAULT_HOST)
        );
        assert_eq!(resolve(&[], None).unwrap(), DockerHost::plain(DEFAULT_HOST));
        let dir = config_dir(Some("default"), &[]);
        let config = dir.path().display().to_string();
        assert_eq!(
            resolve(&[("DOCKER_CONFIG", &config)], None).unwrap(),
            DockerHost::plain(DEFAULT_HOST)
        );
        // An empty DOCKER_HOST counts as unset, as in the Docker CLI.
        assert_eq!(
            resolve(&[("DOCKER_HOST", ""), ("DOCKER_CONFIG", &config)], None).unwrap(),
            DockerHost::plain(DEFAULT_HOST)
        );
    }

    #[test]
    fn a_missing_context_is_an_error_naming_where_it_was_looked_for() {
        let dir = config_dir(Some("gone"), &[]);
        let config = dir.path().display().to_string();
        let error = resolve(&[("DOCKER_CONFIG", &config)], None).unwrap_err();
        let meta = dir
            .path()
            .join("contexts/meta")
            .join(sha256_hex(b"gone"))
            .join("meta.json");
        assert_eq!(
            error.to_string(),
            format!(
                "docker context `gone` (from {}) does not exist: no {}",
                dir.path().join("config.json").display(),
                meta.display()
            )
        );
    }

    #[test]
    fn an_unparsable_config_json_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let config = dir.path().display().to_string();
        let error = resolve(&[("DOCKER_CONFIG", &config)], None).unwrap_err();
        assert!(matches!(error, DockerError::Config { .. }), "{error:?}");
    }

    #[test]
    fn a_daemon_chosen_by_context_is_named_with_it() {
        let socket_dir = tempfile::tempdir().unwrap();
        let socket = format!("unix://{}/docker.sock", socket_dir.path().display());
        let host = DockerHost {
            url: socket.clone(),
            context: Some(ContextChoice {
                name: "colima".to_owned(),
                origin: "DOCKER_CONTEXT".to_owned(),
            }),
        };
        let error = host.in_context(ping(&socket).unwrap_err());
        assert_eq!(
            crate::error_chain::error_chain(&error),
            format!(
                "docker context `colima` (from DOCKER_CONTEXT): no docker daemon at {}/docker.sock: No such file or directory (os error 2)",
                socket_dir.path().display()
            )
        );
    }
}
