//! Whether a Docker daemon answers: the k3d backend and the container Postgres provider both
//! need one, and both report its absence as a reason to skip, never as a failure.
//!
//! The check asks the daemon's `/_ping` endpoint (Docker Engine API, `GET /_ping` answers
//! `200 OK`) over `DOCKER_HOST` (`unix://` or `tcp://`) or the default socket, within two
//! seconds; a socket that accepts connections but does not answer is not a daemon.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable the Docker CLI and k3d read the daemon's address from.
pub const DOCKER_HOST_ENV: &str = "DOCKER_HOST";
/// The daemon's address when `DOCKER_HOST` is unset.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// How long connecting and each read or write may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Why no Docker daemon answered.
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
    /// Something answered, but not `200` to `/_ping`.
    #[error("the docker daemon at {host} answered {status:?}")]
    BadAnswer {
        /// The address.
        host: String,
        /// The first line of the answer.
        status: String,
    },
    /// The connection was accepted but the ping got no answer in time.
    #[error("the docker daemon at {host} did not answer")]
    NoAnswer {
        /// The address.
        host: String,
        /// The read or write error.
        #[source]
        source: std::io::Error,
    },
}

/// Checks that the Docker daemon at `DOCKER_HOST` (default [`DEFAULT_HOST`]) answers a ping.
///
/// # Errors
/// [`DockerError`] saying what was tried and what happened.
pub fn daemon() -> Result<(), DockerError> {
    let host = std::env::var(DOCKER_HOST_ENV).unwrap_or_else(|_| DEFAULT_HOST.to_owned());
    ping(&host)
}

/// Checks that the Docker daemon at `host` (`unix:///path` or `tcp://host:port`) answers a ping.
///
/// # Errors
/// [`DockerError`] saying what was tried and what happened.
pub fn ping(host: &str) -> Result<(), DockerError> {
    let request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    let answer = if let Some(path) = host.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(|source| {
            DockerError::Connect {
                address: path.display().to_string(),
                source,
            }
        })?;
        stream.set_read_timeout(Some(TIMEOUT)).ok();
        stream.set_write_timeout(Some(TIMEOUT)).ok();
        exchange(&mut stream, request)
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
        exchange(&mut stream, request)
    } else {
        return Err(DockerError::UnsupportedHost(host.to_owned()));
    };
    match answer {
        Ok(text) if text.starts_with("HTTP/1.") && text.contains(" 200 ") => Ok(()),
        Ok(text) => Err(DockerError::BadAnswer {
            host: host.to_owned(),
            status: text.lines().next().unwrap_or("").to_owned(),
        }),
        Err(source) => Err(DockerError::NoAnswer {
            host: host.to_owned(),
            source,
        }),
    }
}

fn exchange(stream: &mut (impl Read + Write), request: &[u8]) -> std::io::Result<String> {
    stream.write_all(request)?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 512];
    // The status line is all that matters.
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < 4096 {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves one connection on a Unix socket with `answer`.
    fn serve_once(
        answer: &'static [u8],
    ) -> (tempfile::TempDir, String, std::thread::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 256];
            let n = stream.read(&mut request).unwrap();
            assert!(request[..n].starts_with(b"GET /_ping "));
            stream.write_all(answer).unwrap();
        });
        (dir, format!("unix://{}", path.display()), server)
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
        let (_dir, host, server) = serve_once(b"HTTP/1.1 200 OK\r\n\r\nOK");
        ping(&host).unwrap();
        server.join().unwrap();
    }

    #[test]
    fn another_answer_is_not_a_daemon() {
        let (_dir, host, server) = serve_once(b"HTTP/1.1 404 Not Found\r\n\r\n");
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
}
